//! The relay scanner: finds the `->relay:` lines (and blocks) in the agent's output and
//! says which are new, each once; a line at the very end of the output may still be
//! growing, so it waits for a quiet moment (or the end of the session).

use std::collections::HashMap;

use relay_messaging::lines::{self, RelayLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Every line found was complete.
    Settled,
    /// The last line ends the output and may still grow: it waits for quiet.
    Growing,
}

/// Which relay lines of the output have been sent.
#[derive(Debug)]
pub(super) struct RelayScanner {
    /// How many times each line was sent; a line counts again only when the output holds
    /// more copies of it than were sent.
    sent: HashMap<RelayLine, usize>,
    tail: Tail,
}

impl RelayScanner {
    pub(super) fn new() -> Self {
        RelayScanner {
            sent: HashMap::new(),
            tail: Tail::Settled,
        }
    }

    /// Whether a line at the end of the output waits for quiet.
    pub(super) fn waiting(&self) -> bool {
        self.tail == Tail::Growing
    }

    /// The lines of `output` not sent yet. With `complete` (the output was quiet, or
    /// everything above an `/exit` or the session's end), a last line is taken as it is.
    pub(super) fn scan(&mut self, output: &str, glyphs: &[&str], complete: bool) -> Vec<RelayLine> {
        let scan = lines::scan(output, glyphs);
        let ready = if scan.last_may_grow && !complete {
            scan.lines.len().saturating_sub(1)
        } else {
            scan.lines.len()
        };
        self.tail = if ready < scan.lines.len() {
            Tail::Growing
        } else {
            Tail::Settled
        };
        let mut copies: HashMap<&RelayLine, usize> = HashMap::new();
        let mut new = Vec::new();
        for line in &scan.lines[..ready] {
            let n = copies.entry(line).or_insert(0);
            *n += 1;
            let sent = self.sent.entry(line.clone()).or_insert(0);
            if *n > *sent {
                *sent = *n;
                new.push(line.clone());
            }
        }
        new
    }
}
