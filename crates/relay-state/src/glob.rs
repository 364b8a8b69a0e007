//! Path globs for claims: `?` one character and `*` any run of them within a path
//! segment, `[a-z]` / `[!a-z]` a class, `**` as a whole segment any number of segments,
//! `\x` the character `x`. A path with none of these is itself.
//!
//! Two claims conflict when some path matches both, so besides matching a path this
//! decides whether two globs overlap: both become small automata, and a search of their
//! product looks for a path both accept. Characters are tried from a small alphabet (the
//! characters the globs name, their neighbours, `/` and one character neither names),
//! which is enough because every class is a union of ranges: any set of characters that
//! two classes both accept, if not empty, begins at one of those points.

use std::collections::{BTreeSet, HashSet, VecDeque};

/// Longest glob, in bytes.
pub const MAX_GLOB_BYTES: usize = 1024;

/// Why a glob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Empty, too long, or with a control character.
    #[error("`{0}` is not a path: 1 to {MAX_GLOB_BYTES} bytes without control characters")]
    Bad(String),
    /// Absolute, or leaving its directory with `..`.
    #[error("`{0}` must be a path inside the working directory (relative, no `..`)")]
    Outside(String),
    /// A `[` without its `]`.
    #[error("`{0}` has a `[` without a closing `]`")]
    Unclosed(String),
}

/// `pattern` in its one written form: no `./` or empty segments, a trailing `/` made
/// `/**` (everything under the directory).
pub fn normalize(pattern: &str) -> Result<String, GlobError> {
    if pattern.is_empty() || pattern.len() > MAX_GLOB_BYTES || pattern.chars().any(char::is_control)
    {
        return Err(GlobError::Bad(pattern.to_owned()));
    }
    if pattern.starts_with('/') {
        return Err(GlobError::Outside(pattern.to_owned()));
    }
    let dir = pattern.ends_with('/');
    let mut segs: Vec<&str> = Vec::new();
    for seg in pattern.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(GlobError::Outside(pattern.to_owned())),
            s => segs.push(s),
        }
    }
    if segs.is_empty() {
        return Err(GlobError::Outside(pattern.to_owned()));
    }
    if dir {
        segs.push("**");
    }
    let out = segs.join("/");
    Glob::new(&out)?;
    Ok(out)
}

/// What one step of an automaton accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    Char(char),
    NotSlash,
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pred {
    fn accepts(&self, c: char) -> bool {
        match self {
            Pred::Char(x) => *x == c,
            Pred::NotSlash => c != '/',
            Pred::Any => true,
            Pred::Class { negated, ranges } => {
                c != '/' && (ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated)
            }
        }
    }

    /// Characters around which the set it accepts changes.
    fn points(&self, out: &mut BTreeSet<char>) {
        let mut near = |c: char| {
            out.insert(c);
            if let Some(n) = char::from_u32(c as u32 + 1) {
                out.insert(n);
            }
        };
        match self {
            Pred::Char(c) => near(*c),
            Pred::Class { ranges, .. } => {
                for (lo, hi) in ranges {
                    near(*lo);
                    near(*hi);
                }
            }
            Pred::NotSlash | Pred::Any => {}
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    eps: Vec<usize>,
    edges: Vec<(Pred, usize)>,
}

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    nodes: Vec<Node>,
    accept: usize,
}

impl Glob {
    /// Compiles `pattern` (as written; see [`normalize`]).
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let mut b = Builder::default();
        let segs: Vec<&str> = pattern.split('/').collect();
        let last = segs.len().saturating_sub(1);
        for (i, seg) in segs.iter().enumerate() {
            if *seg == "**" {
                if i == last {
                    // Everything below: any characters, `/` included.
                    let at = b.cur;
                    b.edge(at, Pred::Any, at);
                } else {
                    // No directories or any number of them, each ending in `/`.
                    b.any_dirs();
                    continue;
                }
            } else {
                b.segment(seg, pattern)?;
            }
            if i != last {
                b.step(Pred::Char('/'));
            }
        }
        let accept = b.cur;
        Ok(Glob {
            nodes: b.nodes,
            accept,
        })
    }

    fn closure(&self, set: &mut BTreeSet<usize>) {
        let mut stack: Vec<usize> = set.iter().copied().collect();
        while let Some(n) = stack.pop() {
            for &e in &self.nodes[n].eps {
                if set.insert(e) {
                    stack.push(e);
                }
            }
        }
    }

    fn advance(&self, set: &BTreeSet<usize>, c: char) -> BTreeSet<usize> {
        let mut next = BTreeSet::new();
        for &n in set {
            for (p, to) in &self.nodes[n].edges {
                if p.accepts(c) {
                    next.insert(*to);
                }
            }
        }
        self.closure(&mut next);
        next
    }

    fn start(&self) -> BTreeSet<usize> {
        let mut s = BTreeSet::from([0]);
        self.closure(&mut s);
        s
    }

    /// Whether `path` (relative, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut set = self.start();
        for c in path.chars() {
            set = self.advance(&set, c);
            if set.is_empty() {
                return false;
            }
        }
        set.contains(&self.accept)
    }

    /// Whether some path matches both `self` and `other`.
    pub fn overlaps(&self, other: &Glob) -> bool {
        let mut alphabet = BTreeSet::from(['/', '0', 'a', '\u{1}', '\u{10FFFD}']);
        for g in [self, other] {
            for n in &g.nodes {
                for (p, _) in &n.edges {
                    p.points(&mut alphabet);
                }
            }
        }
        let start = (self.start(), other.start());
        let mut seen: HashSet<(BTreeSet<usize>, BTreeSet<usize>)> = HashSet::new();
        let mut queue = VecDeque::from([start.clone()]);
        seen.insert(start);
        while let Some((a, b)) = queue.pop_front() {
            if a.contains(&self.accept) && b.contains(&other.accept) {
                return true;
            }
            for &c in &alphabet {
                let na = self.advance(&a, c);
                if na.is_empty() {
                    continue;
                }
                let nb = other.advance(&b, c);
                if nb.is_empty() {
                    continue;
                }
                let pair = (na, nb);
                if seen.insert(pair.clone()) {
                    queue.push_back(pair);
                }
            }
        }
        false
    }
}

/// The directory a glob's matches all lie under: its leading segments without a
/// pattern character (empty: the working directory itself), and whether the whole glob
/// is such a plain path.
pub fn literal_base(pattern: &str) -> (String, bool) {
    let mut base = Vec::new();
    let segs: Vec<&str> = pattern.split('/').collect();
    for seg in &segs {
        if seg.contains(['*', '?', '[', '\\']) {
            return (base.join("/"), false);
        }
        base.push(*seg);
    }
    (base.join("/"), true)
}

#[derive(Debug)]
struct Builder {
    nodes: Vec<Node>,
    cur: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            nodes: vec![Node::default()],
            cur: 0,
        }
    }
}

impl Builder {
    fn node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, p: Pred, to: usize) {
        self.nodes[from].edges.push((p, to));
    }

    fn step(&mut self, p: Pred) {
        let to = self.node();
        self.edge(self.cur, p, to);
        self.cur = to;
    }

    /// `(.*/)?`: nothing, or any characters ending in `/`.
    fn any_dirs(&mut self) {
        let start = self.cur;
        let inside = self.node();
        let slash = self.node();
        let end = self.node();
        self.edge(start, Pred::Char('/'), slash);
        self.edge(start, Pred::NotSlash, inside);
        self.edge(inside, Pred::NotSlash, inside);
        self.edge(inside, Pred::Char('/'), slash);
        self.edge(slash, Pred::Char('/'), slash);
        self.edge(slash, Pred::NotSlash, inside);
        self.nodes[start].eps.push(end);
        self.nodes[slash].eps.push(end);
        self.cur = end;
    }

    fn segment(&mut self, seg: &str, pattern: &str) -> Result<(), GlobError> {
        let mut chars = seg.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '?' => self.step(Pred::NotSlash),
                '*' => {
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    let at = self.cur;
                    self.edge(at, Pred::NotSlash, at);
                }
                '\\' => {
                    let lit = chars.next().unwrap_or('\\');
                    self.step(Pred::Char(lit));
                }
                '[' => {
                    let mut negated = false;
                    if matches!(chars.peek(), Some('!' | '^')) {
                        negated = true;
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    let mut first = true;
                    while let Some(c) = chars.next() {
                        if c == ']' && !first {
                            closed = true;
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            chars.next().unwrap_or('\\')
                        } else {
                            c
                        };
                        let mut hi = lo;
                        if chars.peek() == Some(&'-') {
                            let mut ahead = chars.clone();
                            ahead.next();
                            if let Some(&h) = ahead.peek().filter(|h| **h != ']') {
                                chars.next();
                                chars.next();
                                hi = h;
                            }
                        }
                        ranges.push((lo.min(hi), lo.max(hi)));
                    }
                    if !closed {
                        return Err(GlobError::Unclosed(pattern.to_owned()));
                    }
                    self.step(Pred::Class { negated, ranges });
                }
                c => self.step(Pred::Char(c)),
            }
        }
        // A `*` loops on the node it ends at; steps after it start from a fresh node so
        // the loop stays where it was written. (Already so: `step` always adds a node.)
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn globs_match_paths() {
        assert!(g("src/a.rs").matches("src/a.rs"));
        assert!(!g("src/a.rs").matches("src/a.rsx"));
        assert!(g("src/*.rs").matches("src/a.rs"));
        assert!(
            !g("src/*.rs").matches("src/x/a.rs"),
            "* stays in its segment"
        );
        assert!(g("src/**").matches("src/x/y/a.rs"));
        assert!(g("src/**/*.rs").matches("src/a.rs"));
        assert!(g("src/**/*.rs").matches("src/x/y/a.rs"));
        assert!(!g("src/**/*.rs").matches("srcx/a.rs"));
        assert!(g("**/*.md").matches("README.md"));
        assert!(g("**/*.md").matches("docs/a/b.md"));
        assert!(g("a?.txt").matches("ab.txt") && !g("a?.txt").matches("a/.txt"));
        assert!(g("[a-c]x").matches("bx") && !g("[a-c]x").matches("dx"));
        assert!(g("[!a-c]x").matches("dx") && !g("[!a-c]x").matches("ax"));
        assert!(g(r"a\*").matches("a*") && !g(r"a\*").matches("ab"));
    }

    #[test]
    fn overlap_means_some_path_matches_both() {
        let yes = [
            ("src/a.rs", "src/a.rs"),
            ("src/*.rs", "src/a.rs"),
            ("src/**", "src/x/*.rs"),
            ("*.rs", "a*"),
            ("[a-m]*", "[f-z]x"),
            ("**/b.rs", "a/**"),
            ("[!a]", "[!b]"),
        ];
        for (a, b) in yes {
            assert!(g(a).overlaps(&g(b)), "{a} and {b} overlap");
            assert!(g(b).overlaps(&g(a)), "{b} and {a} overlap");
        }
        let no = [
            ("src/a.rs", "src/b.rs"),
            ("src/*.rs", "src/x/a.rs"),
            ("*.rs", "*.md"),
            ("[a-c]", "[d-f]"),
            ("docs/**", "src/**"),
            ("a", "[!a]"),
        ];
        for (a, b) in no {
            assert!(!g(a).overlaps(&g(b)), "{a} and {b} do not overlap");
        }
    }

    #[test]
    fn paths_are_normalised_and_kept_inside() {
        assert_eq!(normalize("./src//a.rs").unwrap(), "src/a.rs");
        assert_eq!(normalize("src/").unwrap(), "src/**");
        assert!(matches!(normalize("../x"), Err(GlobError::Outside(_))));
        assert!(matches!(
            normalize("/etc/passwd"),
            Err(GlobError::Outside(_))
        ));
        assert!(matches!(normalize("a/[b"), Err(GlobError::Unclosed(_))));
        assert!(matches!(normalize(""), Err(GlobError::Bad(_))));
        assert_eq!(literal_base("src/x/*.rs"), ("src/x".to_owned(), false));
        assert_eq!(literal_base("src/a.rs"), ("src/a.rs".to_owned(), true));
    }
}
