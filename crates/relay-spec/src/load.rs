//! Reading a relay.yaml file into typed form. Every failure names file:line:column, says
//! what was expected, and suggests the closest known field for a misspelt one.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use crate::types::RelayFile;

/// A position in a workflow file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl Pos {
    fn from_location(l: &Location) -> Option<Pos> {
        (l.line() > 0).then(|| Pos {
            line: l.line(),
            column: l.column().max(1),
        })
    }
}

/// Why a workflow file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The text is not a valid workflow.
    #[error("{origin}:{}:{}: {message}", pos.line, pos.column)]
    Syntax {
        /// File name (or `<input>`).
        origin: String,
        /// Where.
        pos: Pos,
        /// What went wrong and what was expected.
        message: String,
        /// The offending source line with a caret under the column.
        snippet: String,
    },
}

impl LoadError {
    /// The offending source line and caret, when there is one.
    pub fn snippet(&self) -> Option<&str> {
        match self {
            LoadError::Syntax { snippet, .. } if !snippet.is_empty() => Some(snippet),
            _ => None,
        }
    }
}

/// A loaded workflow file together with its source text and where its names stand.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed file.
    pub file: RelayFile,
    /// The text it was parsed from.
    pub source: String,
    /// The name the file is reported under.
    pub origin: String,
    /// Where names and references stand in the source, for validation messages.
    pub map: SourceMap,
}

/// Reads and parses the workflow file at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&source, &path.display().to_string())
}

/// Parses workflow `source`, reporting errors under the name `origin`.
pub fn parse(source: &str, origin: &str) -> Result<Loaded, LoadError> {
    let file: RelayFile =
        serde_saphyr::from_str(source).map_err(|e| syntax_error(&e, source, origin))?;
    // The second pass only records positions; it cannot fail where the first succeeded,
    // but an empty map only costs locations in messages, never correctness.
    let map = serde_saphyr::from_str::<SourceMap>(source).unwrap_or_default();
    Ok(Loaded {
        file,
        source: source.to_string(),
        origin: origin.to_string(),
        map,
    })
}

fn syntax_error(e: &serde_saphyr::Error, source: &str, origin: &str) -> LoadError {
    let pos = e
        .location()
        .as_ref()
        .and_then(Pos::from_location)
        .unwrap_or(Pos { line: 1, column: 1 });
    let message = match e.without_snippet() {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_name_message("field", field, expected),
        serde_saphyr::Error::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown_name_message("value", variant, expected),
        other => strip_position_suffix(&other.to_string()),
    };
    LoadError::Syntax {
        origin: origin.to_string(),
        pos,
        message,
        snippet: snippet_at(source, pos),
    }
}

fn unknown_name_message(what: &str, got: &str, expected: &[&str]) -> String {
    let mut msg = format!("unknown {what} `{got}`");
    if let Some(best) = did_you_mean(got, expected.iter().copied()) {
        msg.push_str(&format!(" (did you mean `{best}`?)"));
    }
    if !expected.is_empty() {
        msg.push_str("; expected one of: ");
        msg.push_str(&expected.join(", "));
    }
    msg
}

/// saphyr appends " at line L, column C" to plain messages; we print the position first.
fn strip_position_suffix(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// The source line at `pos` with a caret under its column.
pub fn snippet_at(source: &str, pos: Pos) -> String {
    let Some(line) = source.lines().nth((pos.line as usize).saturating_sub(1)) else {
        return String::new();
    };
    let num = pos.line.to_string();
    let pad = " ".repeat(num.len());
    let caret_col = (pos.column as usize)
        .saturating_sub(1)
        .min(line.chars().count());
    let lead: String = line
        .chars()
        .take(caret_col)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad} |\n{num} | {line}\n{pad} | {lead}^")
}

/// The candidate closest to `got` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let got_l = got.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&got_l, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(got.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent swap as one edit (the commonest typo).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Positions of names and references in the source, read by a second, lenient pass.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceMap {
    #[serde(default)]
    agents: Vec<NamedAt>,
    #[serde(default)]
    workflows: Vec<WorkflowAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct NamedAt {
    name: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct WorkflowAt {
    name: Option<Spanned<String>>,
    #[serde(default)]
    steps: Vec<StepAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepAt {
    name: Option<Spanned<String>>,
    agent: Option<Spanned<String>>,
    task: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    verification: Option<VerificationAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct VerificationAt {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
}

/// Which part of a step a position is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepField {
    /// The step's `name`.
    Name,
    /// The step's `agent`.
    Agent,
    /// The step's `task`.
    Task,
    /// The step's `command`.
    Command,
    /// The n-th entry of `dependsOn`.
    DependsOn(usize),
    /// The verification's `type`.
    VerificationType,
}

fn at<T>(s: &Option<Spanned<T>>) -> Option<Pos> {
    s.as_ref().and_then(|s| Pos::from_location(&s.referenced))
}

impl SourceMap {
    /// Where agent number `i` is named.
    pub fn agent(&self, i: usize) -> Option<Pos> {
        self.agents.get(i).and_then(|a| at(&a.name))
    }

    /// Where workflow number `w` is named.
    pub fn workflow(&self, w: usize) -> Option<Pos> {
        self.workflows.get(w).and_then(|wf| at(&wf.name))
    }

    /// Where `field` of step `s` of workflow `w` stands.
    pub fn step(&self, w: usize, s: usize, field: StepField) -> Option<Pos> {
        let step = self.workflows.get(w)?.steps.get(s)?;
        match field {
            StepField::Name => at(&step.name),
            StepField::Agent => at(&step.agent).or(at(&step.name)),
            StepField::Task => at(&step.task).or(at(&step.name)),
            StepField::Command => at(&step.command).or(at(&step.name)),
            StepField::DependsOn(i) => step
                .depends_on
                .get(i)
                .and_then(|d| Pos::from_location(&d.referenced))
                .or(at(&step.name)),
            StepField::VerificationType => step
                .verification
                .as_ref()
                .and_then(|v| at(&v.kind))
                .or(at(&step.name)),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (Pos, String) {
        match parse(src, "w.yaml") {
            Err(LoadError::Syntax { pos, message, .. }) => (pos, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_names_position_and_closest_field() {
        let (pos, msg) = err(
            "name: x\nworkflows:\n  - name: w\n    steps:\n      - name: a\n        dependOn: [b]\n",
        );
        assert_eq!(pos, Pos { line: 6, column: 9 });
        assert!(msg.contains("unknown field `dependOn`"), "{msg}");
        assert!(msg.contains("did you mean `dependsOn`?"), "{msg}");
    }

    #[test]
    fn wrong_type_names_position() {
        let (pos, msg) = err("name: x\nswarm:\n  maxConcurrency: lots\n");
        assert_eq!(pos.line, 3);
        assert!(msg.contains("u32") || msg.contains("integer"), "{msg}");
    }

    #[test]
    fn unknown_cli_lists_the_known_ones() {
        let (pos, msg) = err("name: x\nagents:\n  - name: a\n    cli: claud\n");
        assert_eq!(pos.line, 4);
        assert!(
            msg.contains("`claud`") && msg.contains("did you mean `claude`?"),
            "{msg}"
        );
        assert!(msg.contains("codex"), "{msg}");
    }

    #[test]
    fn yaml_syntax_error_has_a_snippet() {
        let e = parse("name: x\nagents: [\n", "w.yaml").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("w.yaml:"), "{text}");
        assert!(e.snippet().is_some());
    }

    #[test]
    fn missing_name_is_reported() {
        let (_, msg) = err("agents: []\n");
        assert!(msg.contains("missing field `name`"), "{msg}");
    }

    #[test]
    fn source_map_finds_step_fields() {
        let l = parse(
            "name: x\nworkflows:\n  - name: w\n    steps:\n      - name: a\n        agent: bob\n        dependsOn: [zz]\n",
            "w.yaml",
        )
        .unwrap();
        assert_eq!(
            l.map.step(0, 0, StepField::Name),
            Some(Pos {
                line: 5,
                column: 15
            })
        );
        assert_eq!(l.map.step(0, 0, StepField::Agent).map(|p| p.line), Some(6));
        assert_eq!(
            l.map.step(0, 0, StepField::DependsOn(0)).map(|p| p.line),
            Some(7)
        );
    }

    #[test]
    fn did_you_mean_rejects_distant_names() {
        assert_eq!(did_you_mean("zzzzzz", ["dependsOn", "agent"]), None);
        assert_eq!(did_you_mean("agnet", ["dependsOn", "agent"]), Some("agent"));
    }
}
