//! The rules every name in a workflow file follows: steps, agents, workflows, barriers,
//! channels. A name is not empty, holds no NUL character (it could not be passed to a
//! program or stored as a file name), no other control character (a line break or an
//! escape in a name would forge lines and colours in the progress output) and is at most
//! [`MAX_NAME_BYTES`] long. An agent's name is also one messages can be addressed to
//! ([`is_addressable_name`]).

use crate::limits::MAX_NAME_BYTES;
use crate::load::Pos;
use crate::suggest::shown;

use super::{Diagnostic, Report};

/// Reports what is wrong with `name`, a `kind` name (`step`, `agent`, ...). Returns
/// whether the name is usable.
pub(super) fn check_name(kind: &str, name: &str, pos: Option<Pos>, report: &mut Report) -> bool {
    if name.trim().is_empty() {
        report.push(Diagnostic::error(pos, format!("{kind} name is empty")));
        return false;
    }
    let mut ok = true;
    if name.contains('\0') {
        report.push(Diagnostic::error(
            pos,
            format!(
                "{kind} name `{}` contains a NUL character",
                shown(&name.replace('\0', "\\0"))
            ),
        ));
        ok = false;
    }
    if !check_no_control(&format!("{kind} name"), name, pos, report) {
        ok = false;
    }
    if name.len() > MAX_NAME_BYTES {
        report.push(Diagnostic::error(
            pos,
            format!(
                "{kind} name `{}` is too long: names may be at most {MAX_NAME_BYTES} bytes",
                shown(name)
            ),
        ));
        ok = false;
    }
    ok
}

/// Reports a control character other than NUL (which [`check_name`] reports as such) in
/// `name`, the `what` (`step name`, `swarm.channel`), showing the name escaped. Returns
/// whether there is none.
pub(super) fn check_no_control(
    what: &str,
    name: &str,
    pos: Option<Pos>,
    report: &mut Report,
) -> bool {
    let Some(c) = name.chars().find(|&c| c.is_control() && c != '\0') else {
        return true;
    };
    report.push(Diagnostic::error(
        pos,
        format!(
            "{what} {:?} contains the control character {c:?}; a name may not hold \
             line breaks, tabs, escapes or other control characters",
            shown(name)
        ),
    ));
    false
}

/// Whether `name` is one messages can be addressed to (`agent-relay send --to NAME`):
/// 1 to [`MAX_NAME_BYTES`] bytes of letters, digits, `-`, `_` and `.`.
pub fn is_addressable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What [`is_addressable_name`] allows, as error messages say it.
pub const ADDRESSABLE_NAME_RULE: &str = "letters, digits, `-`, `_`, `.`";

/// [`check_name`] for an agent, which must also be one messages can be addressed to.
pub(super) fn check_agent_name(name: &str, pos: Option<Pos>, report: &mut Report) -> bool {
    if !check_name("agent", name, pos, report) {
        return false;
    }
    if !is_addressable_name(name) {
        report.push(Diagnostic::error(
            pos,
            format!(
                "agent name `{}` is not a valid name ({ADDRESSABLE_NAME_RULE}): messages could not \
                 be sent to it",
                shown(name)
            ),
        ));
        return false;
    }
    true
}

/// Reports a NUL character in `text`, the `what` of something (`command of step `x``).
pub(super) fn check_no_nul(what: &str, text: &str, pos: Option<Pos>, report: &mut Report) {
    if let Some(at) = text.find('\0') {
        report.push(Diagnostic::error(
            pos,
            format!(
                "the {what} contains a NUL character (at byte {at}), which no program can be given"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(name: &str) -> Vec<String> {
        let mut r = Report::default();
        check_name("step", name, None, &mut r);
        r.diagnostics.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn names_must_be_present_plain_and_short() {
        assert!(findings("plan").is_empty());
        assert_eq!(findings("  "), ["step name is empty"]);
        assert_eq!(
            findings("a\0b"),
            ["step name `a\\0b` contains a NUL character"]
        );
        let at_limit = "n".repeat(MAX_NAME_BYTES);
        assert!(findings(&at_limit).is_empty());
        let over = findings(&"n".repeat(MAX_NAME_BYTES + 1));
        assert_eq!(over.len(), 1);
        assert!(
            over[0].contains("too long") && over[0].contains("128 bytes"),
            "{over:?}"
        );
        // Multi-byte characters count in bytes.
        assert_eq!(findings(&"é".repeat(65)).len(), 1);
    }

    #[test]
    fn names_hold_no_control_characters() {
        let forged = findings("a\nok    forged completed\u{1b}[31mRED");
        assert_eq!(
            forged,
            [
                r#"step name "a\nok    forged completed\u{1b}[31mRED" contains the control character '\n'; a name may not hold line breaks, tabs, escapes or other control characters"#
            ]
        );
        for name in ["tab\there", "bell\u{7}", "c1\u{85}", "del\u{7f}"] {
            assert_eq!(findings(name).len(), 1, "{name:?}");
        }
        // Other characters, however unusual, are names.
        assert!(findings("plan ✓ é 日本").is_empty());
    }

    #[test]
    fn agent_names_are_names_messages_can_be_sent_to() {
        let agent = |name: &str| {
            let mut r = Report::default();
            let ok = check_agent_name(name, None, &mut r);
            (
                ok,
                r.diagnostics
                    .into_iter()
                    .map(|d| d.message)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(agent("dev-1.b_2"), (true, vec![]));
        assert_eq!(agent("élan"), (true, vec![]));
        assert_eq!(
            agent("my dev"),
            (
                false,
                vec![
                    "agent name `my dev` is not a valid name (letters, digits, `-`, `_`, `.`): \
                     messages could not be sent to it"
                        .to_string()
                ]
            )
        );
        assert!(!agent("a/b").0 && !agent("#ops").0 && !agent("*").0);
        // A control character is reported once, as such.
        let (ok, msgs) = agent("dev\nFAKE LINE");
        assert!(!ok);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains(r#""dev\nFAKE LINE""#), "{msgs:?}");
    }
}
