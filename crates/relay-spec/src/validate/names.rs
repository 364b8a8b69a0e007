//! The rules every name in a workflow file follows: steps, agents, workflows, barriers.
//! A name is not empty, holds no NUL character (it could not be passed to a program or
//! stored as a file name) and is at most [`MAX_NAME_BYTES`] long.

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
}
