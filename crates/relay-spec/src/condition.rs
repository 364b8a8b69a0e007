//! The small expression language of `if:` and `breakIf:`:
//! `steps.build.status == 'completed'`, `contains(steps.triage.output, 'P0')`,
//! `not`, `and`, `or`, parentheses, `==`, `!=`, `<`, `<=`, `>`, `>=` (numbers when both
//! sides are numbers, text otherwise), and the functions `contains`, `startsWith`,
//! `endsWith`, `matches` (a regular expression) and `empty`.
//!
//! Names are paths: `steps.NAME.status` (`completed`, `failed`, `skipped`, or `pending`),
//! `steps.NAME.output`, `steps.NAME.exitCode`, `vars.NAME` or a bare `NAME` (a
//! variable), and inside a loop `iteration`, `output` and `status` (the iteration just
//! run). Parsing is pure and happens at validation, with the column of any error;
//! evaluation asks a lookup for each name.

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A quoted text, a number or `true`/`false`.
    Lit(Value),
    /// A name (`steps.build.status`, `vars.mode`, `iteration`), split at its dots.
    Path(Vec<String>),
    /// `not x`, `!x`.
    Not(Box<Expr>),
    /// `a and b`, `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`, `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Cmp(Op, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(Func, Vec<Expr>),
}

/// A value: text or a truth value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (numbers are text that parses as one).
    Text(String),
    /// `true` or `false`.
    Bool(bool),
}

impl Value {
    /// Whether it counts as true: `true`, or text other than empty, `false` and `0`.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Text(t) => {
                let t = t.trim();
                !(t.is_empty() || t == "false" || t == "0")
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A function of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `contains(text, part)`
    Contains,
    /// `startsWith(text, prefix)`
    StartsWith,
    /// `endsWith(text, suffix)`
    EndsWith,
    /// `matches(text, regex)`
    Matches,
    /// `empty(text)`
    Empty,
}

impl Func {
    const ALL: [(&'static str, Func, usize); 5] = [
        ("contains", Func::Contains, 2),
        ("startsWith", Func::StartsWith, 2),
        ("endsWith", Func::EndsWith, 2),
        ("matches", Func::Matches, 2),
        ("empty", Func::Empty, 1),
    ];
}

/// A syntax error, with the column (1-based, in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Column of the offending character.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// Longest expression accepted (characters); nesting depth accepted.
const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Text(String),
    Num(String),
    Op(Op),
    Not,
    And,
    Or,
    LParen,
    RParen,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ParseError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let (tok, len) = match two.as_str() {
            "==" => (Tok::Op(Op::Eq), 2),
            "!=" => (Tok::Op(Op::Ne), 2),
            "<=" => (Tok::Op(Op::Le), 2),
            ">=" => (Tok::Op(Op::Ge), 2),
            "&&" => (Tok::And, 2),
            "||" => (Tok::Or, 2),
            _ => match c {
                '<' => (Tok::Op(Op::Lt), 1),
                '>' => (Tok::Op(Op::Gt), 1),
                '!' => (Tok::Not, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                ',' => (Tok::Comma, 1),
                '=' => return Err(err(col, "`=` is not an operator; compare with `==`".into())),
                '\'' | '"' => {
                    let mut text = String::new();
                    let mut j = i + 1;
                    loop {
                        match chars.get(j) {
                            None => {
                                return Err(err(
                                    col,
                                    format!("text opened with {c} is never closed"),
                                ));
                            }
                            Some('\\') if chars.get(j + 1).is_some() => {
                                text.push(chars[j + 1]);
                                j += 2;
                            }
                            Some(&q) if q == c => break,
                            Some(&x) => {
                                text.push(x);
                                j += 1;
                            }
                        }
                    }
                    (Tok::Text(text), j + 1 - i)
                }
                _ if c.is_ascii_digit() => {
                    let mut j = i;
                    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                        j += 1;
                    }
                    (Tok::Num(chars[i..j].iter().collect()), j - i)
                }
                _ if c.is_alphabetic() || c == '_' => {
                    let mut j = i;
                    while j < chars.len()
                        && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
                    {
                        j += 1;
                    }
                    let word: String = chars[i..j].iter().collect();
                    let tok = match word.as_str() {
                        "and" => Tok::And,
                        "or" => Tok::Or,
                        "not" => Tok::Not,
                        _ => Tok::Name(word),
                    };
                    (tok, j - i)
                }
                _ => return Err(err(col, format!("unexpected character `{c}`"))),
            },
        };
        out.push((tok, col));
        i += len;
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(_, c)| *c)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.col(),
            message: message.into(),
        })
    }

    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.atom()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.at += 1;
            let right = self.atom()?;
            if let Some(Tok::Op(_)) = self.peek() {
                return self.fail("comparisons do not chain; use `and`");
            }
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let col = self.col();
        let Some(tok) = self.peek().cloned() else {
            return self.fail("the expression ends where a value is expected");
        };
        self.at += 1;
        match tok {
            Tok::Text(t) => Ok(Expr::Lit(Value::Text(t))),
            Tok::Num(n) => Ok(Expr::Lit(Value::Text(n))),
            Tok::LParen => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail("`(` is never closed");
                }
                self.at += 1;
                Ok(inner)
            }
            Tok::Name(n) if self.peek() == Some(&Tok::LParen) => {
                let Some(&(_, func, arity)) = Func::ALL.iter().find(|(name, _, _)| *name == n)
                else {
                    let names: Vec<&str> = Func::ALL.iter().map(|(n, _, _)| *n).collect();
                    return Err(ParseError {
                        column: col,
                        message: format!(
                            "no function `{n}`{}",
                            match crate::suggest::did_you_mean(&n, names.iter().copied()) {
                                Some(s) => format!(" (did you mean `{s}`?)"),
                                None => format!(" (there are: {})", names.join(", ")),
                            }
                        ),
                    });
                };
                self.at += 1;
                self.deeper()?;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.or()?);
                        match self.peek() {
                            Some(Tok::Comma) => self.at += 1,
                            Some(Tok::RParen) => break,
                            _ => return self.fail(format!("`{n}(` is never closed")),
                        }
                    }
                }
                self.at += 1;
                self.depth -= 1;
                if args.len() != arity {
                    return Err(ParseError {
                        column: col,
                        message: format!(
                            "`{n}` takes {arity} argument{}, not {}",
                            if arity == 1 { "" } else { "s" },
                            args.len()
                        ),
                    });
                }
                if func == Func::Matches
                    && let Expr::Lit(Value::Text(re)) = &args[1]
                    && let Err(e) = regex::Regex::new(re)
                {
                    return Err(ParseError {
                        column: col,
                        message: format!("`matches`: not a valid regular expression: {e}"),
                    });
                }
                Ok(Expr::Call(func, args))
            }
            Tok::Name(n) if n == "true" => Ok(Expr::Lit(Value::Bool(true))),
            Tok::Name(n) if n == "false" => Ok(Expr::Lit(Value::Bool(false))),
            Tok::Name(n) => {
                let parts: Vec<String> = n.split('.').map(str::to_string).collect();
                if parts.iter().any(String::is_empty) {
                    return Err(ParseError {
                        column: col,
                        message: format!("`{n}` is not a name (an empty part between dots)"),
                    });
                }
                Ok(Expr::Path(parts))
            }
            other => {
                self.at -= 1;
                self.fail(format!("unexpected {}", describe(&other)))
            }
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Op(_) => "comparison".into(),
        Tok::And => "`and`".into(),
        Tok::Or => "`or`".into(),
        Tok::Not => "`not`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::LParen => "`(`".into(),
        Tok::Name(n) => format!("`{n}`"),
        Tok::Text(t) => format!("'{t}'"),
        Tok::Num(n) => n.clone(),
    }
}

/// Parses `src`.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.chars().count() > MAX_LEN {
        return Err(ParseError {
            column: MAX_LEN,
            message: format!("longer than {MAX_LEN} characters"),
        });
    }
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(ParseError {
            column: 1,
            message: "the condition is empty".into(),
        });
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: src.chars().count() + 1,
        depth: 0,
    };
    let e = p.or()?;
    if p.at < p.toks.len() {
        let what = describe(&p.toks[p.at].0);
        return p.fail(format!("unexpected {what} after a complete condition"));
    }
    Ok(e)
}

impl Expr {
    /// Evaluates against `lookup`, which gives the value of each name (`None`: no such
    /// name, an error naming it).
    pub fn eval(&self, lookup: &dyn Fn(&[String]) -> Option<Value>) -> Result<Value, String> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Path(p) => lookup(p).ok_or_else(|| format!("no value for `{}`", p.join(".")))?,
            Expr::Not(e) => Value::Bool(!e.eval(lookup)?.truthy()),
            Expr::And(a, b) => Value::Bool(a.eval(lookup)?.truthy() && b.eval(lookup)?.truthy()),
            Expr::Or(a, b) => Value::Bool(a.eval(lookup)?.truthy() || b.eval(lookup)?.truthy()),
            Expr::Cmp(op, a, b) => {
                let (a, b) = (a.eval(lookup)?, b.eval(lookup)?);
                Value::Bool(compare(*op, &a, &b))
            }
            Expr::Call(f, args) => {
                let vals: Vec<String> = args
                    .iter()
                    .map(|a| a.eval(lookup).map(|v| v.text()))
                    .collect::<Result<_, _>>()?;
                let arg = |k: usize| vals.get(k).map(String::as_str).unwrap_or("");
                Value::Bool(match f {
                    Func::Contains => arg(0).contains(arg(1)),
                    Func::StartsWith => arg(0).starts_with(arg(1)),
                    Func::EndsWith => arg(0).trim_end().ends_with(arg(1)),
                    Func::Matches => regex::Regex::new(arg(1))
                        .map_err(|e| format!("`matches`: {e}"))?
                        .is_match(arg(0)),
                    Func::Empty => arg(0).trim().is_empty(),
                })
            }
        })
    }

    /// Every name it uses, as written (`steps.build.status`).
    pub fn paths(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Path(p) = e {
                out.push(p.as_slice());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Lit(_) | Expr::Path(_) => {}
            Expr::Not(e) => e.walk(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.walk(f)),
        }
    }
}

/// What a name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name<'a> {
    /// `steps.X.status|output|exitCode`.
    Step {
        /// The step.
        step: &'a str,
        /// What of it.
        field: StepAttr,
    },
    /// A variable (`vars.X` or a bare `X`).
    Var(&'a str),
    /// `steps.X.<something else>` or `steps.X`: not a name of the language.
    BadStep(&'a str),
}

/// What a condition can ask of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAttr {
    /// `completed`, `failed`, `skipped` or `pending`.
    Status,
    /// Its output.
    Output,
    /// Its last exit code (empty when none).
    ExitCode,
}

/// Classifies a path.
pub fn name(path: &[String]) -> Name<'_> {
    match path {
        [s, step, field] if s == "steps" => match field.as_str() {
            "status" => Name::Step {
                step,
                field: StepAttr::Status,
            },
            "output" => Name::Step {
                step,
                field: StepAttr::Output,
            },
            "exitCode" => Name::Step {
                step,
                field: StepAttr::ExitCode,
            },
            _ => Name::BadStep(step),
        },
        [s, step, ..] if s == "steps" => Name::BadStep(step),
        [s] if s == "steps" => Name::BadStep(""),
        [v, var] if v == "vars" => Name::Var(var),
        [var] => Name::Var(var),
        _ => Name::BadStep(""),
    }
}

fn compare(op: Op, a: &Value, b: &Value) -> bool {
    let (ta, tb) = (a.text(), b.text());
    let nums = ta
        .trim()
        .parse::<f64>()
        .ok()
        .zip(tb.trim().parse::<f64>().ok());
    let ord = match nums {
        Some((x, y)) => x.partial_cmp(&y),
        None => Some(ta.trim().cmp(tb.trim())),
    };
    let Some(ord) = ord else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => ord.is_eq(),
        Op::Ne => ord.is_ne(),
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        Op::Ge => ord.is_ge(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, vals: &[(&str, &str)]) -> Result<bool, String> {
        let e = parse(src).map_err(|e| e.to_string())?;
        e.eval(&|p: &[String]| {
            let key = p.join(".");
            vals.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| Value::Text(v.to_string()))
        })
        .map(|v| v.truthy())
    }

    #[test]
    fn the_documented_forms_evaluate() {
        let v = [
            ("steps.build.status", "completed"),
            ("steps.triage.output", "found: P0 crash"),
            ("iteration", "3"),
            ("mode", "fast"),
        ];
        assert_eq!(eval("steps.build.status == 'completed'", &v), Ok(true));
        assert_eq!(eval("steps.build.status != \"completed\"", &v), Ok(false));
        assert_eq!(eval("contains(steps.triage.output, 'P0')", &v), Ok(true));
        assert_eq!(
            eval("not contains(steps.triage.output, 'P1')", &v),
            Ok(true)
        );
        assert_eq!(
            eval("contains(steps.triage.output, 'P1') or mode == 'fast'", &v),
            Ok(true)
        );
        assert_eq!(eval("iteration >= 3 and !empty(mode)", &v), Ok(true));
        assert_eq!(eval("iteration < 10 && iteration > 3", &v), Ok(false));
        assert_eq!(
            eval("matches(steps.triage.output, '^found: P[0-9]')", &v),
            Ok(true)
        );
        assert_eq!(eval("(true or false) and not (false)", &v), Ok(true));
        // Numbers compare as numbers: 10 > 9 although "10" < "9" as text.
        assert_eq!(eval("10 > 9", &v), Ok(true));
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it() {
        assert_eq!(
            eval("steps.nope.status == 'x'", &[]),
            Err("no value for `steps.nope.status`".into())
        );
    }

    #[test]
    fn syntax_errors_give_the_column() {
        let cases = [
            ("steps.a.status = 'x'", 16, "`==`"),
            ("contains(a, 'b'", 16, "never closed"),
            ("a == 'b", 6, "never closed"),
            ("a and", 6, "value is expected"),
            ("a == b == c", 8, "do not chain"),
            ("contans(a, b)", 1, "did you mean `contains`"),
            ("empty(a, b)", 1, "takes 1 argument"),
            ("a b", 3, "after a complete condition"),
            ("matches(a, '(')", 1, "regular expression"),
            ("", 1, "empty"),
            ("a == #", 6, "unexpected character"),
        ];
        for (src, col, what) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.column, col, "{src}: {e}");
            assert!(e.message.contains(what), "{src}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let src = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&src).is_err());
        let src = "not ".repeat(1000) + "a";
        assert!(parse(&src).is_err());
    }

    #[test]
    fn names_are_classified() {
        let e = parse("steps.a.status == 'x' and contains(vars.y, z) or steps.b.bogus").unwrap();
        let names: Vec<Name<'_>> = e.paths().into_iter().map(name).collect();
        assert_eq!(
            names,
            [
                Name::Step {
                    step: "a",
                    field: StepAttr::Status
                },
                Name::Var("y"),
                Name::Var("z"),
                Name::BadStep("b"),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(s in "[a-z.()'\"!=<>&| ,0-9]{0,60}") {
            if let Ok(e) = parse(&s) {
                let _ = e.eval(&|_| Some(Value::Text("1".into())));
            }
        }
    }
}
