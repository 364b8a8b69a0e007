//! "Did you mean": the known name closest to a misspelt one. Bounded so that a huge
//! name (a 40 KB key, a pasted paragraph) costs microseconds, not gigabytes: candidates
//! whose length differs by more than the allowed distance are skipped without a
//! comparison, names longer than [`MAX_COMPARED`] characters are not compared at all, and
//! the distance is computed with three rows of memory.

/// Names longer than this (in characters) get no suggestion: a typo of a known name is
/// never this long, and comparing them would be wasted work.
pub const MAX_COMPARED: usize = 256;

/// The candidate closest to `got` by edit distance, if it is close enough to be a typo
/// (at most a third of the longer name's length, and at least one edit).
pub fn did_you_mean<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let got_l: Vec<char> = got.to_lowercase().chars().collect();
    if got_l.len() > MAX_COMPARED {
        return None;
    }
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let c_len = c.chars().count();
        if c_len > MAX_COMPARED {
            continue;
        }
        let allowed = (c_len.max(got_l.len()) / 3).max(1);
        // Keep the first of equally close candidates, as a stable answer.
        let limit = match best {
            Some((d, _)) => allowed.min(d.saturating_sub(1)),
            None => allowed,
        };
        if c_len.abs_diff(got_l.len()) > limit {
            continue;
        }
        let c_l: Vec<char> = c.to_lowercase().chars().collect();
        if let Some(d) = distance_within(&got_l, &c_l, limit) {
            best = Some((d, c));
            if d == 0 {
                break;
            }
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance between `a` and `b` counting an adjacent swap as one edit (the
/// commonest typo), or `None` when it is more than `limit`.
fn distance_within(a: &[char], b: &[char], limit: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Rows i-2, i-1 and i of the usual matrix, over the shorter string.
    let (a, b) = if a.len() < b.len() { (b, a) } else { (a, b) };
    let w = b.len() + 1;
    let mut before: Vec<usize> = vec![0; w];
    let mut prev: Vec<usize> = (0..w).collect();
    let mut cur: Vec<usize> = vec![0; w];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..w {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(before[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        // Every later row is at least this row's minimum; stop once it is too far.
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[w - 1];
    (d <= limit).then_some(d)
}

/// `name` as it is quoted in a message: whole when short, else its start, an ellipsis
/// and its length, so a huge name cannot turn one message into megabytes.
pub fn shown(name: &str) -> String {
    const SHOWN: usize = 64;
    if name.chars().count() <= SHOWN {
        return name.to_string();
    }
    let head: String = name.chars().take(SHOWN).collect();
    format!("{head}… ({} bytes)", name.len())
}

/// `unknown field `x` (did you mean `y`?); expected one of: ...`, the message for a
/// name that is none of `expected`.
pub(crate) fn unknown_name_message(what: &str, got: &str, expected: &[&str]) -> String {
    let mut msg = format!("unknown {what} `{}`", shown(got));
    if let Some(best) = did_you_mean(got, expected.iter().copied()) {
        msg.push_str(&format!(" (did you mean `{best}`?)"));
    }
    if !expected.is_empty() {
        msg.push_str("; expected one of: ");
        msg.push_str(&expected.join(", "));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        distance_within(&a, &b, usize::MAX / 2).expect("unbounded")
    }

    #[test]
    fn typos_are_found_and_distant_names_are_not() {
        assert_eq!(did_you_mean("agnet", ["dependsOn", "agent"]), Some("agent"));
        assert_eq!(
            did_you_mean("dependOn", ["dependsOn", "agent"]),
            Some("dependsOn")
        );
        assert_eq!(did_you_mean("DEPENDSON", ["dependsOn"]), Some("dependsOn"));
        assert_eq!(did_you_mean("zzzzzz", ["dependsOn", "agent"]), None);
        assert_eq!(did_you_mean("a", std::iter::empty()), None);
    }

    #[test]
    fn the_closest_candidate_wins_and_ties_keep_the_first() {
        assert_eq!(did_you_mean("taks", ["tags", "task"]), Some("tags"));
        assert_eq!(
            did_you_mean("retres", ["retries", "retired"]),
            Some("retries")
        );
        assert_eq!(did_you_mean("abcd", ["abce", "abcf"]), Some("abce"));
    }

    #[test]
    fn distances_count_swaps_as_one_edit() {
        assert_eq!(full_distance("ab", "ba"), 1);
        assert_eq!(full_distance("kitten", "sitting"), 3);
        assert_eq!(full_distance("", "abc"), 3);
        let a: Vec<char> = "kitten".chars().collect();
        let b: Vec<char> = "sitting".chars().collect();
        assert_eq!(distance_within(&a, &b, 2), None);
        assert_eq!(distance_within(&a, &b, 3), Some(3));
    }

    #[test]
    fn huge_names_get_no_suggestion_and_cost_nothing() {
        // Two 20 000-character names: the full matrix would be 3 GB.
        let huge = "x".repeat(20_000);
        let other = format!("{}y", "x".repeat(19_999));
        assert_eq!(did_you_mean(&huge, [other.as_str()]), None);
        let key = "k".repeat(40_000);
        assert_eq!(did_you_mean(&key, ["name", "agents", "workflows"]), None);
        // A short typo among huge candidates is still found.
        assert_eq!(
            did_you_mean("agnet", [huge.as_str(), "agent"]),
            Some("agent")
        );
    }

    #[test]
    fn long_names_are_shortened_in_messages() {
        assert_eq!(shown("plan"), "plan");
        let s = shown(&"z".repeat(40_000));
        assert!(
            s.starts_with(&"z".repeat(64)) && s.ends_with("(40000 bytes)"),
            "{s}"
        );
        assert!(s.len() < 100);
    }

    proptest::proptest! {
        #[test]
        fn bounded_distance_agrees_with_the_full_one(
            a in "[a-d]{0,12}", b in "[a-d]{0,12}", limit in 0usize..8,
        ) {
            let full = full_distance(&a, &b);
            let av: Vec<char> = a.chars().collect();
            let bv: Vec<char> = b.chars().collect();
            let bounded = distance_within(&av, &bv, limit);
            proptest::prop_assert_eq!(bounded, (full <= limit).then_some(full));
        }
    }
}
