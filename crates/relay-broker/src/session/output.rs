//! The output tracker: the screen model fed with every byte (terminal queries answered
//! on the way), the anchor where the task was typed, the agent's clean output extracted
//! from the rows after it, and the agent's `/exit`.
//!
//! Everything the other sub-machines know about the screen they ask this one.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::detect::{self, Injected, Readiness, Rules};
use super::queries::{self, Mark, QueryScanner};
use super::screen::Screen;

/// Where the task was typed: rows after this point are the agent's.
#[derive(Debug)]
struct Anchor {
    /// Absolute main-screen row of the top of the input area.
    abs: u64,
    /// The screen the task was typed on.
    screen: Typed,
    /// Rows that are interface, never output: those shown below the input line when the
    /// task was typed (status lines, footers) and, on the alternate screen, every row
    /// shown before the task (banner, tips).
    exclude: HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    Main,
    Alternate,
}

#[derive(Debug)]
enum Region {
    /// Nothing typed yet: nothing on screen is the agent's output.
    BeforeTask,
    Anchored(Anchor),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    NotSeen,
    /// Seen; `last_frame` says whether the rows above it may still be drawn.
    Seen {
        last_frame: LastFrame,
    },
}

/// Whether the frame that showed the agent's `/exit` looked finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LastFrame {
    /// The reply ends right above the `/exit` row.
    Complete,
    /// Nothing, or a blank row, right above it: some TUIs draw the `/exit` row of a
    /// reply before the rows above it, so the rest of the frame is worth waiting for.
    MayFollow,
}

/// Where the cursor was and what was above it.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    cursor: (u16, u16),
    rows: Vec<String>,
}

/// What reading the screen found since it was last asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Observed {
    /// The agent's output changed (activity).
    pub changed: bool,
    /// The agent's `/exit` was seen for the first time.
    pub exit: bool,
}

impl Observed {
    fn merge(&mut self, other: Observed) {
        self.changed |= other.changed;
        self.exit |= other.exit;
    }
}

/// The screen and what the agent wrote on it.
pub(super) struct OutputTracker {
    screen: Screen,
    scanner: QueryScanner,
    rules: Rules,
    last_output: Option<Instant>,
    region: Region,
    injected: Injected,
    /// The start of the task's echo.
    probe: String,
    /// The agent's output: the last non-empty extraction (rows are often wiped just
    /// before an app exits or redraws).
    output: String,
    /// The last extraction, empty or not, to tell changes.
    seen: String,
    exit: Exit,
    /// Found while reading rows about to be wiped, not yet asked for.
    pending: Observed,
    /// In a session that continues after an earlier task: the echo of this task is
    /// looked for only from the anchor down, never in what the earlier task left above.
    continued: bool,
    /// In such a session on the alternate screen, where rows have no fixed place: how
    /// many visible rows echoed a text starting as this task does when it was typed, and
    /// whether this task's own echo has shown since. Nothing is read before it has.
    echoes_before: usize,
    echo_shown: bool,
}

impl OutputTracker {
    pub(super) fn new(rules: Rules, size: (u16, u16), typed: &str) -> Self {
        OutputTracker {
            screen: Screen::new(size.0, size.1),
            scanner: QueryScanner::new(),
            rules,
            last_output: None,
            region: Region::BeforeTask,
            injected: Injected::new(),
            probe: detect::echo_probe(typed),
            output: String::new(),
            seen: String::new(),
            exit: Exit::NotSeen,
            pending: Observed::default(),
            continued: false,
            echoes_before: 0,
            echo_shown: false,
        }
    }

    /// Starts over for the next task `typed` in the same terminal: the screen (and what
    /// was typed before) is kept, the output, the anchor and the `/exit` are the new
    /// task's.
    pub(super) fn next_task(&mut self, typed: &str) {
        self.region = Region::BeforeTask;
        self.probe = detect::echo_probe(typed);
        self.output.clear();
        self.seen.clear();
        self.exit = Exit::NotSeen;
        self.pending = Observed::default();
        self.continued = true;
        self.echo_shown = false;
    }

    /// Escape codes that draw the screen as it is now.
    pub(super) fn screen_state(&self) -> Vec<u8> {
        self.screen.state_formatted()
    }

    /// Feeds a chunk of output that arrived at `now`; the answers to the terminal queries
    /// in it, each to be written as it is.
    pub(super) fn feed(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        let mut answers = Vec::new();
        let mut pos = 0;
        for found in self.scanner.feed(bytes) {
            match found.mark {
                Mark::Query(q) => {
                    self.screen.process(&bytes[pos..found.end]);
                    pos = found.end;
                    answers.push(queries::answer(q, self.screen.cursor()));
                }
                Mark::ClearScreen | Mark::LeaveAltScreen => {
                    let start = found.start.max(pos);
                    self.screen.process(&bytes[pos..start]);
                    pos = start;
                    // The rows are about to vanish: read them (an `/exit` included) first.
                    let seen = self.observe();
                    self.pending.merge(seen);
                }
                Mark::ClearScrollback => {
                    self.screen.process(&bytes[pos..found.end]);
                    pos = found.end;
                    self.screen.clear_history();
                }
            }
        }
        self.screen.process(&bytes[pos..]);
        self.last_output = Some(now);
        answers
    }

    /// Reads the rows written since the task; what changed since the last time asked.
    pub(super) fn take_observed(&mut self) -> Observed {
        let mut seen = std::mem::take(&mut self.pending);
        seen.merge(self.observe());
        seen
    }

    /// When output last arrived.
    pub(super) fn last_output(&self) -> Option<Instant> {
        self.last_output
    }

    /// How long the output has been quiet at `now` (`None` before the first output).
    pub(super) fn quiet_for(&self, now: Instant) -> Option<Duration> {
        self.last_output.map(|t| now.saturating_duration_since(t))
    }

    /// What the screen says about readiness now.
    pub(super) fn readiness(&self) -> Readiness {
        detect::readiness(
            &self.screen.visible_rows(),
            self.screen.cursor(),
            &self.rules,
        )
    }

    /// Whether the screen looks drawn for a person: some text on it and the cursor shown.
    /// A blank screen or a hidden cursor is an app still loading (or drawing its own
    /// input elsewhere), a poor place for a fallback to type into.
    pub(super) fn looks_drawn(&self) -> bool {
        !self.screen.cursor_hidden()
            && self
                .screen
                .visible_rows()
                .iter()
                .any(|r| !r.trim().is_empty())
    }

    /// The cursor and the visible rows down to it, to tell later whether Enter only
    /// inserted a line break.
    pub(super) fn layout(&self) -> Layout {
        let cursor = self.screen.cursor();
        let mut rows = self.screen.visible_rows();
        rows.truncate(usize::from(cursor.0) + 1);
        Layout { cursor, rows }
    }

    /// Whether Enter since `before` only moved the cursor one row down onto a blank row of
    /// an input box, the row it left (the end of what was typed) now right above it and
    /// the rest of the interface still below: an app that took Enter as a line break in
    /// its input box (codex and gemini do when Enter follows a paste too closely), not as
    /// a submit. The box may have moved as the app redrew rows above it (gemini drops its
    /// paste hint then), and rows elsewhere may repaint meanwhile (gemini redraws its
    /// hints).
    pub(super) fn line_break_inserted_since(&self, before: &Layout) -> bool {
        detect::line_break_inserted(
            &before.rows,
            usize::from(before.cursor.0),
            &self.screen.visible_rows(),
            usize::from(self.screen.cursor().0),
        )
    }

    /// Whether the CLI says it cannot take input yet (its busy cue is shown).
    pub(super) fn busy(&self) -> bool {
        detect::busy(&self.screen.visible_rows(), &self.rules)
    }

    /// Whether the app enabled bracketed paste.
    pub(super) fn bracketed_paste(&self) -> bool {
        self.screen.bracketed_paste()
    }

    /// The agent's output so far.
    pub(super) fn output(&self) -> &str {
        &self.output
    }

    /// Rows of history dropped because the cap was reached.
    pub(super) fn dropped_rows(&self) -> u64 {
        self.screen.dropped_rows()
    }

    /// Whether the agent's `/exit` was seen.
    pub(super) fn exit_seen(&self) -> bool {
        self.exit != Exit::NotSeen
    }

    /// How the frame with the agent's `/exit` looked, once it was seen.
    pub(super) fn exit_frame(&self) -> Option<LastFrame> {
        match self.exit {
            Exit::NotSeen => None,
            Exit::Seen { last_frame } => Some(last_frame),
        }
    }

    /// Whether the task was typed (the screen is read for output from then on).
    pub(super) fn anchored(&self) -> bool {
        matches!(self.region, Region::Anchored(_))
    }

    /// The rules the screen is read with.
    pub(super) fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Records text about to be typed, so its echo is never taken for output or `/exit`.
    pub(super) fn typed(&mut self, text: &str) {
        self.injected.push(text, &self.rules);
    }

    /// Whether the end of `text` is on the cursor's row (the input line).
    pub(super) fn tail_on_input_line(&self, text: &str) -> bool {
        let tail = detect::echo_tail(text);
        !tail.is_empty() && self.cursor_row().contains(&tail)
    }

    /// Whether the input line holds a collapsed paste (`[Pasted text #1 +4 lines]`): what
    /// was pasted is still there, not submitted. The input line is the cursor's row, or
    /// the row above it: gemini keeps its cursor one row below its input box's text.
    pub(super) fn paste_pending(&self) -> bool {
        let rows = self.screen.visible_rows();
        let at = usize::from(self.screen.cursor().0);
        (at.saturating_sub(1)..=at)
            .filter_map(|i| rows.get(i))
            .any(|r| detect::paste_placeholder(&detect::collapse_ws(r)))
    }

    /// Whether the start or the end of `text` is on the cursor's row.
    pub(super) fn on_input_line(&self, text: &str) -> bool {
        let row = self.cursor_row();
        let probe = detect::echo_probe(text);
        self.tail_on_input_line(text) || (!probe.is_empty() && row.contains(&probe))
    }

    /// The cursor's row, whitespace collapsed.
    fn cursor_row(&self) -> String {
        let rows = self.screen.visible_rows();
        let row = usize::from(self.screen.cursor().0);
        rows.get(row)
            .map(|r| detect::collapse_ws(r))
            .unwrap_or_default()
    }

    /// How many rows (history and visible) hold the start or the end of `text`.
    pub(super) fn rows_holding(&self, text: &str) -> usize {
        let tail = detect::echo_tail(text);
        let probe = detect::echo_probe(text);
        if tail.is_empty() {
            return 0;
        }
        self.screen
            .all_rows()
            .iter()
            .map(|r| detect::collapse_ws(r))
            .filter(|r| r.contains(&tail) || r.contains(&probe))
            .count()
    }

    /// Whether the start of `text` is anywhere on the visible screen.
    pub(super) fn shows(&self, text: &str) -> bool {
        let probe = detect::echo_probe(text);
        !probe.is_empty()
            && self
                .screen
                .visible_rows()
                .iter()
                .any(|r| detect::collapse_ws(r).contains(&probe))
    }

    /// Marks the point where the task is typed: the top of the input area around the
    /// cursor.
    pub(super) fn anchor(&mut self) {
        let visible = self.screen.visible_rows();
        let (row, _) = self.screen.cursor();
        let mut top = usize::from(row).min(visible.len().saturating_sub(1));
        // The input area may have a border or status rows above the cursor; the echo of
        // the task can be drawn from there.
        while top > 0 {
            let above = &visible[top - 1];
            let decoration = !above.trim().is_empty()
                && (detect::is_chrome(above, &self.rules)
                    || detect::is_prompt_row_for(above, &self.rules));
            if !decoration {
                break;
            }
            top -= 1;
        }
        let (screen, from) = if self.screen.alternate() {
            (Typed::Alternate, 0)
        } else {
            (Typed::Main, usize::from(row) + 1)
        };
        let exclude = visible
            .iter()
            .skip(from)
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        self.echoes_before = self.echoes(&visible);
        self.region = Region::Anchored(Anchor {
            abs: self.screen.top_abs() + top as u64,
            screen,
            exclude,
        });
    }

    /// How many of `rows` echo a text starting as this task does.
    fn echoes(&self, rows: &[String]) -> usize {
        rows.iter()
            .filter(|r| {
                detect::echo_row_for(std::slice::from_ref(*r), &self.probe, &self.rules).is_some()
            })
            .count()
    }

    /// Reads the rows written since the task: keeps the output, tells a change of it, and
    /// finds the agent's `/exit`.
    fn observe(&mut self) -> Observed {
        let Region::Anchored(anchor) = &self.region else {
            return Observed::default();
        };
        let (rows, start, exclude) = if self.screen.alternate() {
            let rows = self.screen.visible_rows();
            if self.continued && !self.echo_shown {
                // The earlier task's echo, reply and `/exit` may still be on the screen:
                // this task's rows start with its own echo, a new row or one more.
                let new_row = rows.iter().any(|r| {
                    !anchor.exclude.contains(r.trim())
                        && detect::echo_row_for(std::slice::from_ref(r), &self.probe, &self.rules)
                            .is_some()
                });
                if !new_row && self.echoes(&rows) <= self.echoes_before {
                    return Observed::default();
                }
                self.echo_shown = true;
            }
            let Region::Anchored(anchor) = &self.region else {
                return Observed::default();
            };
            let start = detect::echo_row_for(&rows, &self.probe, &self.rules).unwrap_or(0);
            (rows, start, &anchor.exclude)
        } else {
            if anchor.screen == Typed::Alternate {
                // The app left the screen the task was typed on; what it wrote there was
                // captured before it went.
                return Observed::default();
            }
            let rows = self.screen.all_rows();
            let anchor_idx = usize::try_from(anchor.abs.saturating_sub(self.screen.first_abs()))
                .unwrap_or(usize::MAX)
                .min(rows.len());
            // After an earlier task, the rows above hold its echo, which may start as
            // this one does.
            let from = if self.continued { anchor_idx } else { 0 };
            let start = detect::echo_row_for(&rows[from..], &self.probe, &self.rules)
                .map_or(anchor_idx, |i| i + from);
            (rows, start, &anchor.exclude)
        };
        // With the cursor shown, what is below its row is interface (status lines, a
        // clock, footers): the agent writes above its input line, or at the cursor.
        let end = if self.screen.cursor_hidden() {
            rows.len()
        } else {
            let above = if self.screen.alternate() {
                0
            } else {
                usize::try_from(self.screen.top_abs() - self.screen.first_abs()).unwrap_or(0)
            };
            (above + usize::from(self.screen.cursor().0) + 1).min(rows.len())
        };
        let region = &rows[start.min(end)..end];
        let exit = detect::find_exit(region, &self.injected, &self.rules);
        // A completion marker (and its reason) is output; `/exit` is not.
        let cut = exit.map_or(region.len(), |i| {
            i + detect::marker_rows(region, i, &self.rules)
        });
        let out = detect::extract_output(&region[..cut], &self.rules, &self.injected, exclude);
        let mut seen = Observed::default();
        if out != self.seen {
            self.seen = out.clone();
            seen.changed = true;
        }
        if !out.is_empty() {
            self.output = out;
        }
        if let Some(i) = exit
            && self.exit == Exit::NotSeen
        {
            let above_blank = i == 0 || region[i - 1].trim().is_empty();
            let last_frame = if above_blank || self.output.is_empty() {
                LastFrame::MayFollow
            } else {
                LastFrame::Complete
            };
            self.exit = Exit::Seen { last_frame };
            seen.exit = true;
        }
        seen
    }
}
