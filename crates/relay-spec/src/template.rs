//! `{{...}}` interpolation: `{{name}}` is a user variable, `{{steps.X.output}}` is the
//! output of an upstream step, `{{state.KEY}}` the value of KEY in the run's shared
//! state (read when the step starts: see [`render_deferred`]). Text between braces that is not a reference (`{{ a b }}`,
//! `{{}}`) is left as written.

use std::collections::BTreeMap;

/// A reference found in a template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ref {
    /// A user variable (`{{task}}`, `{{base}}`).
    Var(String),
    /// The output of a step (`{{steps.plan.output}}`).
    StepOutput(String),
    /// Every iteration's output of a looping step as a JSON array (`{{steps.fix.outputs}}`).
    StepOutputs(String),
    /// A key of the run's shared state (`{{state.plan}}`).
    State(String),
}

/// The key under which the outputs of every iteration of `step` are kept among the
/// step outputs (`{{steps.X.outputs}}`).
pub fn outputs_key(step: &str) -> String {
    format!("{step}[]")
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Var(v) => write!(f, "{{{{{v}}}}}"),
            Ref::StepOutput(s) => write!(f, "{{{{steps.{s}.output}}}}"),
            Ref::StepOutputs(s) => write!(f, "{{{{steps.{s}.outputs}}}}"),
            Ref::State(k) => write!(f, "{{{{state.{k}}}}}"),
        }
    }
}

#[derive(Debug)]
enum Part<'a> {
    Lit(&'a str),
    /// A reference and its text as written, braces included.
    Ref(Ref, &'a str),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// The reference `inner` (the text between `{{` and `}}`) stands for, if any. Looks only as
/// far as the first character that cannot be part of a reference, so scanning a long
/// text full of `{{` costs time linear in the text.
fn classify(inner: &str) -> Option<Ref> {
    let name_start = inner.len() - inner.trim_start().len();
    let body = &inner[name_start..];
    let first = body.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let name_len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let (name, tail) = body.split_at(name_len);
    if !tail.chars().all(char::is_whitespace) {
        return None;
    }
    if let Some(rest) = name.strip_prefix("steps.")
        && let Some(step) = rest.strip_suffix(".output")
        && !step.is_empty()
    {
        return Some(Ref::StepOutput(step.to_string()));
    }
    if let Some(rest) = name.strip_prefix("steps.")
        && let Some(step) = rest.strip_suffix(".outputs")
        && !step.is_empty()
    {
        return Some(Ref::StepOutputs(step.to_string()));
    }
    if let Some(key) = name.strip_prefix("state.")
        && !key.is_empty()
    {
        return Some(Ref::State(key.to_string()));
    }
    Some(Ref::Var(name.to_string()))
}

fn parts(text: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    // `lit` is where the pending literal starts, `at` where the search for `{{` resumes.
    let mut lit = 0;
    let mut at = 0;
    // The first `}}` at or after some earlier point. Each `{{` looks for the first `}}`
    // after it; remembering the last answer means the text is searched once, not once
    // per `{{`.
    let mut close: Option<usize> = None;
    while let Some(rel) = text[at..].find("{{") {
        let open = at + rel;
        let inner_start = open + 2;
        let c = match close {
            Some(c) if c >= inner_start => c,
            _ => match text[inner_start..].find("}}") {
                Some(r) => inner_start + r,
                None => break,
            },
        };
        close = Some(c);
        match classify(&text[inner_start..c]) {
            Some(r) => {
                if open > lit {
                    out.push(Part::Lit(&text[lit..open]));
                }
                out.push(Part::Ref(r, &text[open..c + 2]));
                lit = c + 2;
                at = lit;
            }
            // Not a reference: the braces stay literal and the search goes on inside.
            None => at = inner_start,
        }
    }
    if lit < text.len() {
        out.push(Part::Lit(&text[lit..]));
    }
    out
}

/// Every reference in `text`, in order of appearance (repeats included).
pub fn references(text: &str) -> Vec<Ref> {
    parts(text)
        .into_iter()
        .filter_map(|p| match p {
            Part::Ref(r, _) => Some(r),
            Part::Lit(_) => None,
        })
        .collect()
}

/// How substituted values are written into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// As they are (tasks, paths).
    None,
    /// As one shell word each (deterministic commands), so values cannot inject commands.
    Shell,
}

/// A rendered text whose `{{state.KEY}}` references are still to be filled: the run's
/// state is read when a step starts, long after its text is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as it is final (variables and outputs already in, quoted as asked).
    Text(String),
    /// The value of a state key, to be put here.
    State(String),
}

/// Fills every reference in `text` from `vars` and `outputs`. Returns the references that
/// had no value instead of leaving them as literal text; a `{{state.KEY}}` reference has
/// no value here (use [`render_deferred`] where state is read).
pub fn render(
    text: &str,
    vars: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
    quoting: Quoting,
) -> Result<String, Vec<Ref>> {
    let pieces = render_deferred(text, vars, outputs, quoting)?;
    fill_state(&pieces, &BTreeMap::new(), quoting)
}

/// Like [`render`], but `{{state.KEY}}` references are kept as [`Piece::State`] to be
/// filled by [`fill_state`]. The text is scanned once: a value put in (a variable, an
/// output) is never read for references again, so it cannot smuggle one in.
pub fn render_deferred(
    text: &str,
    vars: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
    quoting: Quoting,
) -> Result<Vec<Piece>, Vec<Ref>> {
    let mut out: Vec<Piece> = Vec::new();
    let mut missing = Vec::new();
    let push = |out: &mut Vec<Piece>, s: &str| match out.last_mut() {
        Some(Piece::Text(t)) => t.push_str(s),
        _ => out.push(Piece::Text(s.to_owned())),
    };
    for part in parts(text) {
        match part {
            Part::Lit(s) => push(&mut out, s),
            Part::Ref(Ref::State(k), _) => out.push(Piece::State(k)),
            Part::Ref(r, _) => {
                let value = match &r {
                    Ref::Var(v) => vars.get(v),
                    Ref::StepOutput(s) => outputs.get(s),
                    Ref::StepOutputs(s) => outputs.get(&outputs_key(s)),
                    Ref::State(_) => None,
                };
                match value {
                    Some(v) if quoting == Quoting::Shell => push(&mut out, &shell_quote(v)),
                    Some(v) => push(&mut out, v),
                    None => {
                        if !missing.contains(&r) {
                            missing.push(r);
                        }
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The text of `pieces` with each state key's value from `state` (quoted as asked), or
/// the keys that have none.
pub fn fill_state(
    pieces: &[Piece],
    state: &BTreeMap<String, String>,
    quoting: Quoting,
) -> Result<String, Vec<Ref>> {
    let mut out = String::new();
    let mut missing = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::State(k) => match state.get(k) {
                Some(v) if quoting == Quoting::Shell => out.push_str(&shell_quote(v)),
                Some(v) => out.push_str(v),
                None => {
                    let r = Ref::State(k.clone());
                    if !missing.contains(&r) {
                        missing.push(r);
                    }
                }
            },
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// `pieces` as text with each state reference written as `{{state.KEY}}`.
pub fn written(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::State(k) => out.push_str(&Ref::State(k.clone()).to_string()),
        }
    }
    out
}

/// `text` with each `{{name}}` that `values` has a value for replaced by it, as it is;
/// every other reference is left as written.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    for part in parts(text) {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Ref(Ref::Var(v), raw) => match values.get(&v) {
                Some(value) => out.push_str(value),
                None => out.push_str(raw),
            },
            Part::Ref(Ref::StepOutput(_) | Ref::StepOutputs(_) | Ref::State(_), raw) => {
                out.push_str(raw)
            }
        }
    }
    out
}

/// `value` as a single POSIX shell word.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_vars_and_step_outputs() {
        let r = references("Plan {{task}} from {{ steps.plan-a.output }} and {{task}}");
        assert_eq!(
            r,
            [
                Ref::Var("task".into()),
                Ref::StepOutput("plan-a".into()),
                Ref::Var("task".into())
            ]
        );
    }

    #[test]
    fn state_references_are_filled_late_and_values_never_rescanned() {
        assert_eq!(
            references("{{ state.plan.a }}"),
            [Ref::State("plan.a".into())]
        );
        let vars = map(&[("v", "{{state.secret}} 'x'")]);
        let pieces =
            render_deferred("echo {{v}} {{state.k}}", &vars, &map(&[]), Quoting::Shell).unwrap();
        assert_eq!(
            written(&pieces),
            r"echo '{{state.secret}} '\''x'\''' {{state.k}}"
        );
        let state = map(&[("k", "a b"), ("secret", "no")]);
        assert_eq!(
            fill_state(&pieces, &state, Quoting::Shell).unwrap(),
            r"echo '{{state.secret}} '\''x'\''' 'a b'"
        );
        assert_eq!(
            fill_state(&pieces, &map(&[]), Quoting::Shell),
            Err(vec![Ref::State("k".into())])
        );
        assert_eq!(
            render("{{state.k}}", &map(&[]), &map(&[]), Quoting::None),
            Err(vec![Ref::State("k".into())])
        );
    }

    #[test]
    fn non_references_stay_literal() {
        let vars = map(&[]);
        assert_eq!(
            render("a {{ not a ref }} {{}} {{", &vars, &vars, Quoting::None),
            Ok("a {{ not a ref }} {{}} {{".to_string())
        );
    }

    #[test]
    fn substitution_fills_what_it_knows_and_keeps_the_rest_as_written() {
        let values = map(&[("branch", "fix/{{x}}"), ("empty", "")]);
        assert_eq!(
            substitute(
                "git switch {{ branch }} {{other}} {{steps.a.output}} {{empty}}{{ not a ref }}",
                &values
            ),
            "git switch fix/{{x}} {{other}} {{steps.a.output}} {{ not a ref }}"
        );
    }

    #[test]
    fn missing_values_are_reported_not_left_in() {
        let err = render(
            "{{a}} {{b}} {{a}}",
            &map(&[("b", "x")]),
            &map(&[]),
            Quoting::None,
        );
        assert_eq!(err, Err(vec![Ref::Var("a".into())]));
    }

    #[test]
    fn shell_quoting_keeps_values_as_one_word() {
        let out = render(
            "echo {{v}}",
            &map(&[("v", "x; rm -rf / 'q'")]),
            &map(&[]),
            Quoting::Shell,
        )
        .unwrap();
        assert_eq!(out, r"echo 'x; rm -rf / '\''q'\'''");
    }

    /// The scanning rules written out directly (quadratic on many `{{`): the definition
    /// the linear scanner must agree with.
    fn references_by_definition(text: &str) -> Vec<Ref> {
        fn classify_plain(inner: &str) -> Option<Ref> {
            let name = inner.trim();
            let first = name.chars().next()?;
            if !(first.is_ascii_alphabetic() || first == '_') || !name.chars().all(is_name_char) {
                return None;
            }
            if let Some(rest) = name.strip_prefix("steps.")
                && let Some(step) = rest.strip_suffix(".output")
                && !step.is_empty()
            {
                return Some(Ref::StepOutput(step.to_string()));
            }
            if let Some(key) = name.strip_prefix("state.")
                && !key.is_empty()
            {
                return Some(Ref::State(key.to_string()));
            }
            Some(Ref::Var(name.to_string()))
        }
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                break;
            };
            match classify_plain(&after[..close]) {
                Some(r) => {
                    out.push(r);
                    rest = &after[close + 2..];
                }
                None => rest = after,
            }
        }
        out
    }

    #[test]
    fn a_400_kb_task_full_of_braces_scans_in_one_pass() {
        // 58 000 openings that are not references and one closing at the very end: a
        // scanner that searches for the closing once per opening does 58 000 full passes.
        let mut task = "{{ a b ".repeat(58_000);
        task.push_str("}} and {{ task }}");
        assert!(task.len() > 400_000);
        assert_eq!(references(&task), [Ref::Var("task".into())]);
        let vars = map(&[("task", "T")]);
        let out = render(&task, &vars, &map(&[]), Quoting::None).unwrap();
        assert!(out.ends_with("}} and T"));
        assert_eq!(out.len(), task.len() - "{{ task }}".len() + 1);
    }

    proptest! {
        #[test]
        fn scanning_agrees_with_the_definition(s in "[{} a._x-]{0,40}|(\\{\\{|\\}\\}|steps\\.a\\.output| |x){0,12}") {
            prop_assert_eq!(references(&s), references_by_definition(&s));
            // Text without references renders as itself.
            let out = render(&s, &BTreeMap::new(), &BTreeMap::new(), Quoting::None);
            if references(&s).is_empty() {
                prop_assert_eq!(out, Ok(s.clone()));
            }
        }

        #[test]
        fn shell_quote_round_trips_through_sh(s in "[ -~\n]{0,40}") {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(&s)))
                .output()
                .unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
