//! The step graph as SVG: workflow steps in columns by depth (a step sits one column
//! right of its deepest dependency), edges from each dependency, and inside each step
//! box the pattern's nodes of that step (`draft#2`, `map[3]`) as chips. Every box and
//! chip carries its state as a class, so the page's style colours it; the page swaps in
//! the new drawing as the run moves.

use std::collections::HashMap;
use std::fmt::Write;

use relay_engine::snapshot::StepState;

/// One workflow step to draw.
#[derive(Debug, Clone)]
pub struct GraphStep {
    /// Step name.
    pub name: String,
    /// Where it stands.
    pub status: StepState,
    /// Names of the steps it waits for.
    pub deps: Vec<String>,
    /// Its pattern nodes: (label, state).
    pub nodes: Vec<(String, StepState)>,
}

const COL_W: u32 = 210;
const BOX_W: u32 = 170;
const HEAD_H: u32 = 38;
const CHIP_H: u32 = 18;
const GAP_Y: u32 = 18;
const PAD: u32 = 12;
/// Chips drawn per step; more are summed up in one line.
const MAX_CHIPS: usize = 8;

/// The CSS class of a state.
pub fn state_class(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "pending",
        StepState::Running => "running",
        StepState::Completed => "completed",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
        StepState::Parked => "parked",
    }
}

/// Text made safe inside XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Each step's column: 0 for steps without dependencies, else one past the deepest
/// dependency. Unknown names are ignored and a cycle cannot loop (it is cut where it
/// closes).
pub fn columns(steps: &[GraphStep]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut col: Vec<Option<usize>> = vec![None; steps.len()];
    let mut on_path = vec![false; steps.len()];
    for start in 0..steps.len() {
        // Iterative depth-first walk: (node, next dependency to look at).
        let mut stack = vec![(start, 0usize)];
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            if col[i].is_some() {
                stack.pop();
                continue;
            }
            on_path[i] = true;
            let deps = &steps[i].deps;
            if let Some(d) = deps.get(*next) {
                *next += 1;
                if let Some(&j) = index.get(d.as_str())
                    && col[j].is_none()
                    && !on_path[j]
                {
                    stack.push((j, 0));
                }
                continue;
            }
            let c = deps
                .iter()
                .filter_map(|d| index.get(d.as_str()))
                .filter_map(|&j| col[j])
                .map(|c| c + 1)
                .max()
                .unwrap_or(0);
            col[i] = Some(c);
            on_path[i] = false;
            stack.pop();
        }
    }
    col.into_iter().map(|c| c.unwrap_or(0)).collect()
}

fn box_height(s: &GraphStep) -> u32 {
    let chips = s.nodes.len().min(MAX_CHIPS) + usize::from(s.nodes.len() > MAX_CHIPS);
    HEAD_H + chips as u32 * (CHIP_H + 4)
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The SVG of `steps`.
pub fn render(steps: &[GraphStep]) -> String {
    let cols = columns(steps);
    let mut y_next: Vec<u32> = Vec::new();
    let mut pos: Vec<(u32, u32, u32)> = Vec::with_capacity(steps.len());
    for (s, &c) in steps.iter().zip(&cols) {
        if y_next.len() <= c {
            y_next.resize(c + 1, PAD);
        }
        let h = box_height(s);
        pos.push((PAD + c as u32 * COL_W, y_next[c], h));
        y_next[c] += h + GAP_Y;
    }
    let width = PAD * 2 + (y_next.len().max(1) as u32) * COL_W - (COL_W - BOX_W);
    let height = y_next.iter().copied().max().unwrap_or(PAD) + PAD;
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    for (i, s) in steps.iter().enumerate() {
        let (x, y, _) = pos[i];
        for d in &s.deps {
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            let (dx, dy, _) = pos[j];
            let (x1, y1, x2, y2) = (dx + BOX_W, dy + HEAD_H / 2, x, y + HEAD_H / 2);
            let mid = (x1 + x2) / 2;
            let _ = write!(
                svg,
                r#"<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>"#
            );
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let (x, y, h) = pos[i];
        let class = state_class(s.status);
        let name = escape(&s.name);
        let _ = write!(
            svg,
            r#"<g class="step {class}" data-step="{name}" data-state="{class}"><title>{name}: {class}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="6"/><text x="{}" y="{}" class="name">{}</text><text x="{}" y="{}" class="state">{class}</text>"#,
            x + 10,
            y + 16,
            escape(&short(&s.name, 22)),
            x + 10,
            y + 31,
        );
        for (k, (label, st)) in s.nodes.iter().take(MAX_CHIPS).enumerate() {
            let cy = y + HEAD_H + k as u32 * (CHIP_H + 4);
            let c = state_class(*st);
            let _ = write!(
                svg,
                r#"<g class="node {c}" data-step="{}" data-state="{c}"><rect x="{}" y="{cy}" width="{}" height="{CHIP_H}" rx="4"/><text x="{}" y="{}">{}</text></g>"#,
                escape(label),
                x + 8,
                BOX_W - 16,
                x + 14,
                cy + 13,
                escape(&short(label, 24)),
            );
        }
        if s.nodes.len() > MAX_CHIPS {
            let cy = y + HEAD_H + MAX_CHIPS as u32 * (CHIP_H + 4);
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="more">+{} more</text>"#,
                x + 14,
                cy + 13,
                s.nodes.len() - MAX_CHIPS
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, deps: &[&str], status: StepState) -> GraphStep {
        GraphStep {
            name: name.into(),
            status,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            nodes: vec![],
        }
    }

    #[test]
    fn a_step_sits_right_of_its_deepest_dependency() {
        let steps = [
            step("d", &["b", "c"], StepState::Pending),
            step("a", &[], StepState::Completed),
            step("b", &["a"], StepState::Running),
            step("c", &["a", "b"], StepState::Pending),
            step("e", &["nowhere"], StepState::Pending),
        ];
        assert_eq!(columns(&steps), vec![3, 0, 1, 2, 0]);
    }

    #[test]
    fn a_cycle_does_not_loop() {
        let steps = [
            step("a", &["b"], StepState::Pending),
            step("b", &["a"], StepState::Pending),
        ];
        let cols = columns(&steps);
        assert_eq!(cols.len(), 2);
        assert!(cols.iter().all(|&c| c <= 1));
    }

    #[test]
    fn deep_chains_do_not_overflow_the_stack() {
        let steps: Vec<GraphStep> = (0..50_000)
            .map(|i| GraphStep {
                name: format!("s{i}"),
                status: StepState::Pending,
                deps: if i == 0 {
                    vec![]
                } else {
                    vec![format!("s{}", i - 1)]
                },
                nodes: vec![],
            })
            .rev()
            .collect();
        let cols = columns(&steps);
        assert_eq!(cols[0], 49_999);
    }

    #[test]
    fn the_drawing_names_each_state_and_edge() {
        let mut b = step("b<x>", &["a"], StepState::Running);
        b.nodes = (1..=10)
            .map(|i| (format!("b<x>#{i}"), StepState::Completed))
            .collect();
        let svg = render(&[step("a", &[], StepState::Completed), b]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"class="step completed" data-step="a""#));
        assert!(svg.contains(r#"class="step running" data-step="b&lt;x&gt;""#));
        assert_eq!(svg.matches(r#"class="edge""#).count(), 1);
        assert_eq!(svg.matches(r#"class="node completed""#).count(), MAX_CHIPS);
        assert!(svg.contains("+2 more"));
        assert!(!svg.contains("<x>"));
    }

    #[test]
    fn escaping_covers_markup_and_control_characters() {
        assert_eq!(escape("a&<>\"'\u{1b}b"), "a&amp;&lt;&gt;&quot;&#39; b");
    }
}
