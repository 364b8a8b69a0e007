//! The conflict report: what conflicted, where both versions are, how to merge by hand,
//! and each conflicted file as git merged it (markers in place). Pure text.

/// What a report says.
pub struct ReportInput<'a> {
    /// The step.
    pub step: &'a str,
    /// Its agent.
    pub agent: &'a str,
    /// The agent's branch.
    pub branch: &'a str,
    /// Its commit.
    pub head: &'a str,
    /// The run's branch.
    pub run_branch: &'a str,
    /// Its tip.
    pub run_tip: &'a str,
    /// Git's messages.
    pub messages: &'a str,
    /// Each conflicted file and its merged text.
    pub files: &'a [(String, String)],
}

/// The report's Markdown.
pub fn conflict_report(r: &ReportInput<'_>) -> String {
    let mut out = format!(
        "# Merge conflict: step `{}` (agent `{}`)\n\n\
         The agent's branch `{}` (commit {}) and the run's branch `{}` (commit {}) \
         changed the same lines. Nothing was lost: the run's branch was left as it was \
         and the agent's branch keeps its version.\n\n\
         Files:\n",
        r.step, r.agent, r.branch, r.head, r.run_branch, r.run_tip
    );
    for (f, _) in r.files {
        out.push_str(&format!("- `{f}`\n"));
    }
    out.push_str(&format!(
        "\nTo merge by hand:\n\n```sh\ngit switch {}\ngit merge {}\n```\n",
        r.run_branch, r.branch
    ));
    if !r.messages.is_empty() {
        out.push_str(&format!(
            "\n## What git said\n\n```text\n{}\n```\n",
            r.messages
        ));
    }
    for (f, text) in r.files {
        out.push_str(&format!(
            "\n## `{f}` as merged\n\n```text\n{}\n```\n",
            text.trim_end()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_both_versions_and_shows_the_markers() {
        let files = vec![(
            "notes.txt".to_string(),
            "<<<<<<< a\nmine\n=======\ntheirs\n>>>>>>> b\n".to_string(),
        )];
        let text = conflict_report(&ReportInput {
            step: "edit",
            agent: "bob",
            branch: "agent-relay/r1-bob",
            head: "abc",
            run_branch: "agent-relay/r1",
            run_tip: "def",
            messages: "CONFLICT (content): Merge conflict in notes.txt",
            files: &files,
        });
        assert!(text.starts_with("# Merge conflict: step `edit` (agent `bob`)"));
        assert!(text.contains("`agent-relay/r1-bob` (commit abc)"));
        assert!(text.contains("`agent-relay/r1` (commit def)"));
        assert!(text.contains("- `notes.txt`\n"));
        assert!(text.contains("git merge agent-relay/r1-bob"));
        assert!(text.contains("Merge conflict in notes.txt"));
        assert!(text.contains("mine\n=======\ntheirs"));
    }
}
