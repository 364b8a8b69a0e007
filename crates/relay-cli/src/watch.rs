//! `agent-relay watch [RUN_ID]`: a full-screen terminal view of a run (ratatui): the steps
//! and their pattern nodes with state, attempts and elapsed time, the selected agent's
//! terminal screen (or output), recent messages, open questions and steps waiting for
//! approval; keys move between agents, pause and unpause the run, approve or reject a
//! step, answer a question and cancel the run. Off a terminal it prints the run's events
//! as `logs --follow` does.
//!
//! The view is a pure state (`Watch`: keys in, effects out; `draw` renders it), fed from
//! the same run-directory model as the web dashboard, read on as the run grows.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use relay_dashboard::follow::RunModel;
use relay_dashboard::screen::{ScreenView, Terminal};
use relay_dashboard::view::{self, RunView};
use relay_engine::runs::Standing;
use relay_engine::snapshot::StepState;

use crate::error::{CliError, CliResult, Exit};

/// A key, as the view understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Previous agent.
    Up,
    /// Next agent.
    Down,
    /// A typed character.
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
}

/// What a key asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave the view (the run goes on).
    Quit,
    /// Cancel the run.
    Cancel,
    /// Answer `step`'s question.
    Answer {
        /// The node that asked.
        step: String,
        /// The answer.
        text: String,
    },
    /// Pause the run (`true`) or unpause it.
    Pause(bool),
    /// Approve or reject `step`.
    Decide {
        /// The step waiting for approval.
        step: String,
        /// Whether it may run.
        approved: bool,
        /// Why, when given.
        reason: Option<String>,
    },
}

/// What the keys are doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Moving between agents.
    Browse,
    /// Typing an answer to `step`.
    Answering {
        /// The node that asked.
        step: String,
        /// Typed so far.
        text: String,
    },
    /// Asked whether to cancel.
    ConfirmCancel,
    /// Typing why `step` is rejected.
    Rejecting {
        /// The step waiting for approval.
        step: String,
        /// Typed so far.
        reason: String,
    },
}

/// One entry of the agents list: a step or one of its pattern nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Node label.
    pub label: String,
    /// Shown indented under its step.
    pub node: bool,
    /// Where it stands.
    pub state: StepState,
    /// Attempts.
    pub attempts: u32,
    /// The agent.
    pub agent: Option<String>,
}

/// The view's state.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The run.
    pub run: RunView,
    /// Agents list.
    pub entries: Vec<Entry>,
    /// Index into `entries`.
    pub selected: usize,
    /// The selected agent's screen.
    pub screen: Option<ScreenView>,
    /// The selected agent's output, when it has no screen.
    pub output: Option<String>,
    /// Key mode.
    pub mode: Mode,
    /// The last action's result.
    pub notice: String,
    /// When each running node was first seen running.
    started: std::collections::BTreeMap<String, Instant>,
}

fn entries_of(run: &RunView) -> Vec<Entry> {
    let mut out = Vec::new();
    for s in &run.steps {
        out.push(Entry {
            label: s.name.clone(),
            node: false,
            state: s.status,
            attempts: s.attempts,
            agent: s.agent.clone(),
        });
        for n in &s.nodes {
            out.push(Entry {
                label: n.label.clone(),
                node: true,
                state: n.status,
                attempts: n.attempts,
                agent: s.agent.clone(),
            });
        }
    }
    out
}

impl Watch {
    /// A view of `run` with the first agent selected.
    pub fn new(run: RunView) -> Watch {
        let entries = entries_of(&run);
        let mut w = Watch {
            run,
            entries,
            selected: 0,
            screen: None,
            output: None,
            mode: Mode::Browse,
            notice: String::new(),
            started: Default::default(),
        };
        w.note_running();
        w
    }

    fn note_running(&mut self) {
        let now = Instant::now();
        for e in &self.entries {
            if e.state == StepState::Running {
                self.started.entry(e.label.clone()).or_insert(now);
            } else {
                self.started.remove(&e.label);
            }
        }
    }

    /// Takes a newer reading of the run; the selection stays on the same agent.
    pub fn update(&mut self, run: RunView) {
        let keep = self.selected_label().map(str::to_owned);
        self.entries = entries_of(&run);
        self.run = run;
        self.selected = keep
            .and_then(|l| self.entries.iter().position(|e| e.label == l))
            .unwrap_or(0);
        self.note_running();
    }

    /// The selected node's label.
    pub fn selected_label(&self) -> Option<&str> {
        self.entries.get(self.selected).map(|e| e.label.as_str())
    }

    /// Handles one key.
    pub fn key(&mut self, key: Key) -> Option<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Browse) {
            Mode::Browse => match key {
                Key::Char('q') | Key::Esc => return Some(Effect::Quit),
                Key::Up | Key::Char('k') => self.select(
                    self.selected
                        .checked_sub(1)
                        .unwrap_or(self.entries.len().saturating_sub(1)),
                ),
                Key::Down | Key::Char('j') | Key::Char('\t') => self.select(self.selected + 1),
                Key::Char('c') if self.run.status == Standing::Running => {
                    self.mode = Mode::ConfirmCancel;
                }
                Key::Char('p') if self.run.status == Standing::Running => {
                    return Some(Effect::Pause(!self.run.paused));
                }
                Key::Char('y') => match self.waiting_approval() {
                    Some(step) => {
                        return Some(Effect::Decide {
                            step,
                            approved: true,
                            reason: None,
                        });
                    }
                    None => self.notice = "no step waits for approval".into(),
                },
                Key::Char('n') => match self.waiting_approval() {
                    Some(step) => {
                        self.mode = Mode::Rejecting {
                            step,
                            reason: String::new(),
                        }
                    }
                    None => self.notice = "no step waits for approval".into(),
                },
                Key::Char('a') => {
                    let asking = self
                        .selected_label()
                        .and_then(|l| self.run.questions.iter().find(|q| q.step == l));
                    match asking.or(self.run.questions.first()) {
                        Some(q) => {
                            self.mode = Mode::Answering {
                                step: q.step.clone(),
                                text: String::new(),
                            }
                        }
                        None => self.notice = "no question waits for an answer".into(),
                    }
                }
                _ => {}
            },
            Mode::ConfirmCancel => match key {
                Key::Char('y') => return Some(Effect::Cancel),
                _ => self.notice = "not cancelled".into(),
            },
            Mode::Rejecting { step, mut reason } => match key {
                Key::Esc => self.notice = "not rejected".into(),
                Key::Enter => {
                    let reason = Some(reason.trim().to_owned()).filter(|r| !r.is_empty());
                    return Some(Effect::Decide {
                        step,
                        approved: false,
                        reason,
                    });
                }
                Key::Backspace => {
                    reason.pop();
                    self.mode = Mode::Rejecting { step, reason };
                }
                Key::Char(c) if !c.is_control() => {
                    reason.push(c);
                    self.mode = Mode::Rejecting { step, reason };
                }
                _ => self.mode = Mode::Rejecting { step, reason },
            },
            Mode::Answering { step, mut text } => match key {
                Key::Esc => self.notice = "no answer sent".into(),
                Key::Enter if !text.trim().is_empty() => {
                    return Some(Effect::Answer { step, text });
                }
                Key::Backspace => {
                    text.pop();
                    self.mode = Mode::Answering { step, text };
                }
                Key::Char(c) if !c.is_control() => {
                    text.push(c);
                    self.mode = Mode::Answering { step, text };
                }
                _ => self.mode = Mode::Answering { step, text },
            },
        }
        None
    }

    /// The step a decision is for: the selected one when it waits, else the first that
    /// does (a node's approval belongs to its workflow step).
    fn waiting_approval(&self) -> Option<String> {
        let selected = self.selected_label();
        self.run
            .approvals
            .iter()
            .find(|a| {
                selected.is_some_and(|l| l == a.step || l.starts_with(&format!("{}#", a.step)))
            })
            .or(self.run.approvals.first())
            .map(|a| a.step.clone())
    }

    fn select(&mut self, i: usize) {
        if self.entries.is_empty() {
            return;
        }
        let i = i % self.entries.len();
        if i != self.selected {
            self.selected = i;
            self.screen = None;
            self.output = None;
        }
    }

    fn elapsed(&self, e: &Entry) -> String {
        if let Some(t) = self.started.get(&e.label) {
            return secs(t.elapsed().as_millis() as u64);
        }
        self.run
            .steps
            .iter()
            .find(|s| {
                s.name == e.label && matches!(s.status, StepState::Completed | StepState::Failed)
            })
            .map(|s| secs(s.duration_ms))
            .unwrap_or_default()
    }
}

fn secs(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn state_style(s: StepState) -> Style {
    Style::default().fg(match s {
        StepState::Pending => Color::Gray,
        StepState::Running => Color::Cyan,
        StepState::Completed => Color::Green,
        StepState::Failed => Color::Red,
        StepState::Skipped | StepState::Parked => Color::Yellow,
    })
}

fn state_name(s: StepState) -> &'static str {
    relay_dashboard::graph::state_class(s)
}

/// Draws the view.
pub fn draw(f: &mut Frame, w: &Watch) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(5),
            Constraint::Length(7),
            Constraint::Length(1),
        ])
        .split(f.area());
    let head = format!(
        "run {}  workflow {}  {}{}  {}",
        w.run.run_id,
        w.run.workflow,
        w.run.status.as_str(),
        if w.run.paused { " (paused)" } else { "" },
        w.run.duration_ms.map(secs).unwrap_or_default()
    );
    f.render_widget(
        Paragraph::new(head).style(Style::default().add_modifier(Modifier::BOLD)),
        rows[0],
    );
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(38), Constraint::Min(20)])
        .split(rows[1]);
    let items: Vec<ListItem> = w
        .entries
        .iter()
        .map(|e| {
            let indent = if e.node { "  " } else { "" };
            let attempts = if e.attempts > 1 {
                format!(" #{}", e.attempts)
            } else {
                String::new()
            };
            ListItem::new(Line::from(vec![
                Span::raw(format!("{indent}{}", e.label)),
                Span::raw(" "),
                Span::styled(state_name(e.state), state_style(e.state)),
                Span::raw(format!("{attempts} {}", w.elapsed(e))),
            ]))
        })
        .collect();
    let mut list_state = ListState::default().with_selected(Some(w.selected));
    f.render_stateful_widget(
        List::new(items)
            .block(Block::default().borders(Borders::ALL).title("steps"))
            .highlight_symbol("> ")
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        cols[0],
        &mut list_state,
    );
    let entry = w.entries.get(w.selected);
    let title = match entry {
        Some(e) => format!("{} ({})", e.label, e.agent.as_deref().unwrap_or("no agent")),
        None => "no steps".into(),
    };
    let body: Vec<Line> = match (&w.screen, &w.output) {
        (Some(s), _) => s.rows.iter().map(|r| Line::raw(r.clone())).collect(),
        (None, Some(o)) => {
            let lines: Vec<&str> = o.lines().collect();
            let keep = usize::from(cols[1].height.saturating_sub(2));
            lines[lines.len().saturating_sub(keep)..]
                .iter()
                .map(|l| Line::raw(l.to_string()))
                .collect()
        }
        (None, None) => vec![Line::raw("(nothing yet)")],
    };
    f.render_widget(
        Paragraph::new(body).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!("agent: {title}")),
        ),
        cols[1],
    );
    let mut lower: Vec<Line> = w
        .run
        .approvals
        .iter()
        .map(|a| {
            Line::styled(
                format!("! {} waits for approval (y approves, n rejects)", a.step),
                Style::default().fg(Color::Magenta),
            )
        })
        .collect();
    lower.extend(w.run.questions.iter().map(|q| {
        Line::styled(
            format!("? {} asks: {}", q.step, q.question),
            Style::default().fg(Color::Yellow),
        )
    }));
    let room = 5usize.saturating_sub(lower.len());
    let msgs = &w.run.messages;
    for m in &msgs[msgs.len().saturating_sub(room)..] {
        lower.push(Line::raw(format!(
            "{} -> {} [{}] {}",
            m.from,
            m.to,
            m.state.as_str(),
            m.text.replace('\n', " ⏎ ")
        )));
    }
    f.render_widget(
        Paragraph::new(lower).block(
            Block::default()
                .borders(Borders::ALL)
                .title("questions and messages"),
        ),
        rows[2],
    );
    let foot = match &w.mode {
        Mode::Browse => format!(
            "↑/↓ j/k tab: agent  a: answer  y/n: approve/reject  p: {}  c: cancel  q: quit  {}",
            if w.run.paused { "unpause" } else { "pause" },
            w.notice
        ),
        Mode::Rejecting { step, reason } => {
            format!("reject {step}, because: {reason}▏ (Enter rejects, Esc keeps it waiting)")
        }
        Mode::ConfirmCancel => "cancel the run? y to confirm, any other key keeps it".into(),
        Mode::Answering { step, text } => {
            format!("answer to {step}: {text}▏ (Enter sends, Esc drops)")
        }
    };
    f.render_widget(Paragraph::new(foot), rows[3]);
}

/// Reads the selected agent's screen or output.
struct Reader {
    dir: PathBuf,
    size: (u16, u16),
    terminal: Option<(String, Terminal)>,
}

impl Reader {
    fn refresh(&mut self, w: &mut Watch) {
        let Some(label) = w.selected_label().map(str::to_owned) else {
            return;
        };
        let sdir = relay_engine::store::step_dir_of(&self.dir, &label);
        let attempts = w.entries[w.selected].attempts;
        let transcript = (1..=attempts)
            .rev()
            .find(|n| sdir.join(format!("attempt-{n}.pty")).exists());
        match transcript {
            Some(n) => {
                let same =
                    matches!(&self.terminal, Some((l, t)) if *l == label && t.view().attempt == n);
                if !same {
                    self.terminal =
                        Some((label.clone(), Terminal::of_attempt(&sdir, n, self.size)));
                }
                if let Some((_, t)) = &mut self.terminal {
                    while t.refresh().unwrap_or(false) {}
                    w.screen = Some(t.view());
                }
            }
            None => {
                w.screen = None;
                w.output = view::read_tail(&sdir.join("output.txt"))
                    .or_else(|| view::read_tail(&sdir.join(format!("attempt-{attempts}.txt"))));
            }
        }
    }
}

/// `agent-relay watch [RUN_ID]`.
pub fn watch(run_id: &str) -> CliResult {
    let wd = crate::execute::workdir()?;
    let dir = relay_engine::runs::find_run(&wd, run_id)?;
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        eprintln!("not a terminal: printing the run's events instead");
        return crate::runs_cmd::logs(crate::runs_cmd::LogsArgs {
            run_id: run_id.to_owned(),
            step: None,
            follow: true,
        });
    }
    let rt = crate::execute::runtime()?;
    let mut terminal = ratatui::try_init()
        .map_err(|e| CliError::runtime(format!("cannot take over the terminal: {e}")))?;
    let result = run_loop(&mut terminal, &dir, &rt);
    ratatui::restore();
    result
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> CliResult {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let settings = relay_engine::Settings::from_env();
    let mut model = RunModel::open_states(dir);
    let mut w = Watch::new(model.view());
    let mut reader = Reader {
        dir: dir.to_path_buf(),
        size: settings.pty_size,
        terminal: None,
    };
    let mut last_reload = Instant::now();
    loop {
        if last_reload.elapsed() >= Duration::from_millis(250) {
            if model.refresh() {
                w.update(model.view());
            }
            last_reload = Instant::now();
        }
        reader.refresh(&mut w);
        terminal
            .draw(|f| draw(f, &w))
            .map_err(|e| CliError::runtime(format!("cannot draw: {e}")))?;
        let ready = event::poll(Duration::from_millis(200))
            .map_err(|e| CliError::runtime(format!("cannot read the terminal: {e}")))?;
        if !ready {
            continue;
        }
        let Ok(Event::Key(k)) = event::read() else {
            continue;
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let key = match k.code {
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ok(Exit::Success);
            }
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::Tab => Key::Char('\t'),
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Backspace => Key::Backspace,
            KeyCode::Char(c) => Key::Char(c),
            _ => continue,
        };
        match w.key(key) {
            None => {}
            Some(Effect::Quit) => return Ok(Exit::Success),
            Some(Effect::Cancel) => {
                w.notice = "cancelling…".into();
                let _ = terminal.draw(|f| draw(f, &w));
                w.notice =
                    match rt.block_on(relay_dashboard::actions::cancel(dir, settings.kill_grace)) {
                        Ok(m)
                        | Err(relay_dashboard::actions::ActionError::Failed(m))
                        | Err(relay_dashboard::actions::ActionError::Invalid(m))
                        | Err(relay_dashboard::actions::ActionError::NotLive(m)) => m,
                    };
            }
            Some(Effect::Answer { step, text }) => {
                w.notice = match rt.block_on(relay_dashboard::actions::answer(dir, step, text)) {
                    Ok(m) => m,
                    Err(e) => e.to_string(),
                };
            }
            Some(Effect::Pause(paused)) => {
                let by = crate::steer::user(None);
                w.notice = match rt.block_on(relay_dashboard::actions::pause(dir, paused, by)) {
                    Ok(m) => m,
                    Err(e) => e.to_string(),
                };
            }
            Some(Effect::Decide {
                step,
                approved,
                reason,
            }) => {
                let by = crate::steer::user(None);
                let asked = relay_dashboard::actions::decide(dir, step, approved, by, reason);
                w.notice = match rt.block_on(asked) {
                    Ok(m) => m,
                    Err(e) => e.to_string(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_dashboard::view::{Question, StepView};

    fn step(name: &str, status: StepState) -> StepView {
        StepView {
            name: name.into(),
            status,
            attempts: 1,
            exit_code: None,
            duration_ms: 1500,
            reason: None,
            agent: Some(format!("{name}-agent")),
            depends_on: vec![],
            nodes: vec![],
            verification: None,
        }
    }

    fn run(steps: Vec<StepView>, questions: Vec<Question>) -> RunView {
        RunView {
            run_id: "r1".into(),
            workflow: "w".into(),
            status: Standing::Running,
            reason: None,
            started_at: None,
            duration_ms: Some(10),
            pattern: None,
            steps,
            attempts: vec![],
            messages: vec![],
            questions,
            approvals: vec![],
            paused: false,
            trajectory: vec![],
            graph_svg: String::new(),
        }
    }

    #[test]
    fn keys_move_between_agents_and_wrap() {
        let mut w = Watch::new(run(
            vec![
                step("a", StepState::Completed),
                step("b", StepState::Running),
            ],
            vec![],
        ));
        assert_eq!(w.selected_label(), Some("a"));
        assert_eq!(w.key(Key::Down), None);
        assert_eq!(w.selected_label(), Some("b"));
        w.key(Key::Char('\t'));
        assert_eq!(w.selected_label(), Some("a"));
        w.key(Key::Up);
        assert_eq!(w.selected_label(), Some("b"));
        assert_eq!(w.key(Key::Char('q')), Some(Effect::Quit));
    }

    #[test]
    fn the_selection_follows_its_agent_across_updates() {
        let mut w = Watch::new(run(
            vec![step("a", StepState::Running), step("b", StepState::Pending)],
            vec![],
        ));
        w.key(Key::Down);
        w.update(run(
            vec![
                step("new", StepState::Pending),
                step("a", StepState::Completed),
                step("b", StepState::Running),
            ],
            vec![],
        ));
        assert_eq!(w.selected_label(), Some("b"));
    }

    #[test]
    fn cancel_asks_first() {
        let mut w = Watch::new(run(vec![step("a", StepState::Running)], vec![]));
        assert_eq!(w.key(Key::Char('c')), None);
        assert_eq!(w.mode, Mode::ConfirmCancel);
        assert_eq!(w.key(Key::Char('n')), None);
        assert_eq!(w.mode, Mode::Browse);
        w.key(Key::Char('c'));
        assert_eq!(w.key(Key::Char('y')), Some(Effect::Cancel));
    }

    #[test]
    fn an_answer_is_typed_then_sent_to_the_step_that_asked() {
        let q = Question {
            step: "b".into(),
            question: "port?".into(),
        };
        let mut w = Watch::new(run(
            vec![step("a", StepState::Running), step("b", StepState::Running)],
            vec![q],
        ));
        w.key(Key::Char('a'));
        for c in "80x".chars() {
            w.key(Key::Char(c));
        }
        w.key(Key::Backspace);
        w.key(Key::Char('8'));
        assert_eq!(
            w.key(Key::Enter),
            Some(Effect::Answer {
                step: "b".into(),
                text: "808".into()
            })
        );
        let mut w = Watch::new(run(vec![step("a", StepState::Running)], vec![]));
        w.key(Key::Char('a'));
        assert_eq!(w.mode, Mode::Browse);
        assert!(w.notice.contains("no question"));
    }

    #[test]
    fn p_pauses_a_live_run_and_unpauses_a_paused_one() {
        let mut r = run(vec![step("a", StepState::Running)], vec![]);
        let mut w = Watch::new(r.clone());
        assert_eq!(w.key(Key::Char('p')), Some(Effect::Pause(true)));
        r.paused = true;
        w.update(r.clone());
        assert_eq!(w.key(Key::Char('p')), Some(Effect::Pause(false)));
        r.status = Standing::Completed;
        w.update(r);
        assert_eq!(
            w.key(Key::Char('p')),
            None,
            "a finished run has nothing to pause"
        );
    }

    #[test]
    fn y_approves_and_n_rejects_with_a_reason_the_step_that_waits() {
        use relay_dashboard::view::Approval;
        let wait = |s: &str| Approval {
            step: s.into(),
            approvers: vec![],
            timeout_ms: None,
        };
        let mut r = run(
            vec![
                step("build", StepState::Completed),
                step("deploy", StepState::Pending),
                step("docs", StepState::Pending),
            ],
            vec![],
        );
        let mut w = Watch::new(r.clone());
        assert_eq!(w.key(Key::Char('y')), None);
        assert!(w.notice.contains("no step waits"), "{}", w.notice);
        r.approvals = vec![wait("deploy"), wait("docs")];
        w.update(r);
        assert_eq!(
            w.key(Key::Char('y')),
            Some(Effect::Decide {
                step: "deploy".into(),
                approved: true,
                reason: None
            }),
            "nothing waiting selected: the first that waits"
        );
        w.key(Key::Down);
        w.key(Key::Down);
        assert_eq!(w.selected_label(), Some("docs"));
        w.key(Key::Char('n'));
        for c in "not yet".chars() {
            w.key(Key::Char(c));
        }
        assert_eq!(
            w.key(Key::Enter),
            Some(Effect::Decide {
                step: "docs".into(),
                approved: false,
                reason: Some("not yet".into())
            }),
            "the selected step"
        );
        w.key(Key::Char('n'));
        assert_eq!(w.key(Key::Esc), None);
        assert_eq!(w.mode, Mode::Browse);
    }

    #[test]
    fn the_drawing_shows_steps_states_and_the_selected_agent() {
        let mut w = Watch::new(run(
            vec![
                step("a", StepState::Completed),
                step("b", StepState::Running),
            ],
            vec![],
        ));
        w.key(Key::Down);
        w.screen = Some(ScreenView {
            attempt: 1,
            rows: vec!["hello from b".into()],
            cursor: (0, 0),
            history: vec![],
        });
        let backend = ratatui::backend::TestBackend::new(100, 24);
        let mut t = ratatui::Terminal::new(backend).unwrap();
        t.draw(|f| draw(f, &w)).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(text.contains("completed"), "{text}");
        assert!(text.contains("agent: b (b-agent)"), "{text}");
        assert!(text.contains("hello from b"), "{text}");
    }
}
