//! Provider rate and usage limits as the CLIs report them: an HTTP 429 in the output, or
//! the CLI's own "limit reached ... resets at ..." message (its patterns are in the CLI
//! table), and when the limit resets, read from the message. Pure: the caller passes the
//! text and the current time.
//!
//! Reset times understood, in the line that reports the limit or the lines after it:
//! claude's `usage limit reached|EPOCH`; an RFC 3339 time (`resets at 2026-12-02T15:00Z`);
//! a duration (`try again in 2 hours 5 minutes`, `retry in 35.2s`, `Retry-After: 30`); a
//! clock time (`resets 3pm`, `try again at 15:04`), taken as UTC, the next time it comes.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use relay_spec::Cli;
use serde::{Deserialize, Serialize};

/// A limit an agent reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// The line that reported it (trimmed, at most 300 bytes).
    pub message: String,
    /// When it resets, in seconds since the Unix epoch, when the message says.
    pub resets_at: Option<u64>,
}

/// Lines at the end of an output that are searched: a limit ends an agent's run, so it is
/// reported last, and an agent's earlier talk about rate limiting is left alone.
const TAIL_LINES: usize = 12;

fn http_429() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        RegexBuilder::new(
            r"(\b(http|status|error|code|api error)\b[^\n]{0,24}\b429\b)|(\b429\b[^\n]{0,24}(too many requests|rate|quota|resource.exhausted))",
        )
        .case_insensitive(true)
        .build()
        .expect("valid regex")
    })
}

fn cli_patterns(cli: Option<Cli>) -> Vec<Regex> {
    let patterns: &[&str] = match cli {
        Some(c) => crate::cli_table::profile(c).rate_limit_patterns,
        None => &[],
    };
    patterns
        .iter()
        .filter_map(|p| RegexBuilder::new(p).case_insensitive(true).build().ok())
        .collect()
}

/// The limit reported at the end of `text` (an agent's output, or its stderr), if one is;
/// `now` is the current time in seconds since the Unix epoch.
pub fn detect(cli: Option<Cli>, text: &str, now: u64) -> Option<RateLimit> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    let patterns = cli_patterns(cli);
    let at = tail
        .iter()
        .position(|l| http_429().is_match(l) || patterns.iter().any(|p| p.is_match(l)))?;
    let line = tail[at].trim();
    let resets_at = tail[at..].iter().find_map(|l| reset_time(l, now));
    let mut message = line.to_string();
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Some(RateLimit { message, resets_at })
}

fn re(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .expect("valid regex")
}

/// When the limit reported in `line` resets, if the line says.
pub fn reset_time(line: &str, now: u64) -> Option<u64> {
    static EPOCH: OnceLock<Regex> = OnceLock::new();
    static RFC: OnceLock<Regex> = OnceLock::new();
    static AFTER: OnceLock<Regex> = OnceLock::new();
    static IN: OnceLock<Regex> = OnceLock::new();
    static CLOCK: OnceLock<Regex> = OnceLock::new();
    // claude: `Claude AI usage limit reached|1767225600`.
    let epoch = EPOCH.get_or_init(|| re(r"limit reached\|(\d{10})\b"));
    if let Some(c) = epoch.captures(line) {
        return c[1].parse().ok();
    }
    let rfc = RFC.get_or_init(|| {
        re(
            r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?\s*(Z|UTC|[+-]\d\d:?\d\d)?",
        )
    });
    if let Some(c) = rfc.captures(line) {
        let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
        let days = days_from_civil(num(1)?, num(2)?, num(3)?);
        let mut secs = days * 86_400 + num(4)? * 3600 + num(5)? * 60 + num(6).unwrap_or(0);
        if let Some(z) = c.get(7).map(|m| m.as_str())
            && (z.starts_with('+') || z.starts_with('-'))
        {
            let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
            let (h, m) = digits.split_at(2.min(digits.len()));
            let off = h.parse::<i64>().unwrap_or(0) * 3600 + m.parse::<i64>().unwrap_or(0) * 60;
            secs -= if z.starts_with('-') { -off } else { off };
        }
        return u64::try_from(secs).ok();
    }
    let after = AFTER.get_or_init(|| re(r"retry-after:?\s*(\d+)"));
    if let Some(c) = after.captures(line) {
        return c[1].parse::<u64>().ok().map(|s| now.saturating_add(s));
    }
    let within = IN.get_or_init(|| {
        re(
            r"(?:in|after)\s+((?:\d+(?:\.\d+)?\s*(?:days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b[\s,]*(?:and\s+)?)+)",
        )
    });
    if let Some(c) = within.captures(line) {
        return duration_secs(&c[1]).map(|s| now.saturating_add(s));
    }
    let clock = CLOCK.get_or_init(|| {
        re(r"(?:resets?|try again|retry|until)\s+(?:at\s+)?(\d{1,2})(?::(\d\d))?\s*(am|pm)?\b")
    });
    if let Some(c) = clock.captures(line) {
        let mut h: u64 = c[1].parse().ok()?;
        let m: u64 = c.get(2).map_or(Some(0), |m| m.as_str().parse().ok())?;
        match c.get(3).map(|m| m.as_str().to_ascii_lowercase()).as_deref() {
            Some("pm") if h < 12 => h += 12,
            Some("am") if h == 12 => h = 0,
            None if c.get(2).is_none() => return None,
            _ => {}
        }
        if h > 23 || m > 59 {
            return None;
        }
        let day = now - now % 86_400;
        let at = day + h * 3600 + m * 60;
        return Some(if at > now { at } else { at + 86_400 });
    }
    None
}

/// Seconds in `text` such as `2 hours 5 minutes` or `35.2s` (rounded up).
fn duration_secs(text: &str) -> Option<u64> {
    static PART: OnceLock<Regex> = OnceLock::new();
    let part = PART.get_or_init(|| re(r"(\d+(?:\.\d+)?)\s*([a-z]+)"));
    let mut total = 0.0f64;
    for c in part.captures_iter(text) {
        let n: f64 = c[1].parse().ok()?;
        let unit = c[2].to_ascii_lowercase();
        let mult = match unit.chars().next() {
            Some('d') => 86_400.0,
            Some('h') => 3600.0,
            Some('m') => 60.0,
            _ => 1.0,
        };
        total += n * mult;
    }
    (total.is_finite() && total >= 0.0).then(|| total.ceil() as u64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's method).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000; // 2026-11-30T00:53:20Z

    #[test]
    fn each_clis_own_message_is_a_limit_with_its_reset() {
        let claude = detect(
            Some(Cli::Claude),
            "working\nClaude AI usage limit reached|1796003600\n",
            NOW,
        )
        .unwrap();
        assert_eq!(claude.resets_at, Some(1_796_003_600));
        assert_eq!(claude.message, "Claude AI usage limit reached|1796003600");
        let codex = detect(
            Some(Cli::Codex),
            "ERROR: You've hit your usage limit. Upgrade to Pro or try again in 1 hour 30 minutes.",
            NOW,
        )
        .unwrap();
        assert_eq!(codex.resets_at, Some(NOW + 5400));
        let gemini = detect(
            Some(Cli::Gemini),
            "[API Error: You exceeded your current quota (Quota exceeded). Please retry in 35.2s.]",
            NOW,
        )
        .unwrap();
        assert_eq!(gemini.resets_at, Some(NOW + 36));
        let opencode = detect(
            Some(Cli::Opencode),
            "AI_APICallError: Rate limit reached for gpt-5. Please try again in 20s.",
            NOW,
        )
        .unwrap();
        assert_eq!(opencode.resets_at, Some(NOW + 20));
    }

    #[test]
    fn an_http_429_is_a_limit_for_any_cli_and_the_reset_may_be_missing() {
        let l = detect(None, "Error: HTTP 429 Too Many Requests", NOW).unwrap();
        assert_eq!(l.resets_at, None);
        let l = detect(
            Some(Cli::Goose),
            "request failed: status 429\nRetry-After: 30\n",
            NOW,
        )
        .unwrap();
        assert_eq!(l.resets_at, Some(NOW + 30));
        let l = detect(
            Some(Cli::Claude),
            "API Error: 429 rate_limit_error, resets at 2026-11-29T10:00:00Z",
            NOW,
        )
        .unwrap();
        assert_eq!(
            l.resets_at,
            Some(days_from_civil(2026, 11, 29) as u64 * 86_400 + 36_000)
        );
    }

    #[test]
    fn talk_about_rate_limits_early_in_the_output_is_not_a_limit() {
        let mut text = String::from("I added a rate limit to the API (429 on too many requests)\n");
        for i in 0..20 {
            text.push_str(&format!("line {i}\n"));
        }
        assert_eq!(detect(Some(Cli::Claude), &text, NOW), None);
        assert_eq!(detect(Some(Cli::Claude), "port 4290 is open", NOW), None);
        assert_eq!(detect(None, "", NOW), None);
    }

    #[test]
    fn clock_times_and_offsets() {
        let day = NOW - NOW % 86_400;
        let at = reset_time("5-hour limit reached ∙ resets 3pm", NOW).unwrap();
        assert_eq!(at % 86_400, 15 * 3600);
        assert!(at > NOW && at <= NOW + 86_400);
        assert_eq!(
            reset_time("try again at 00:30", NOW),
            Some(day + 86_400 + 1800)
                .filter(|_| day + 1800 <= NOW)
                .or(Some(day + 1800))
        );
        assert_eq!(reset_time("resets 3", NOW), None);
        assert_eq!(
            reset_time("reset 2026-11-29T12:00+02:00", NOW),
            Some(days_from_civil(2026, 11, 29) as u64 * 86_400 + 36_000)
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
