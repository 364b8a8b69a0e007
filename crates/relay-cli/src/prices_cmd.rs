//! `agent-relay prices`: the per-model price table that turns tokens into dollars (built
//! in, extended by the user's and the project's `prices.yaml`), listed or extended.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use relay_engine::prices::{self, Price, PriceTable, PricesFile, Source};

use crate::error::{CliError, CliResult, Exit};

/// `prices` options.
#[derive(Args, Debug)]
pub struct PricesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    action: Option<PricesAction>,
}

/// What to do with the table.
#[derive(Subcommand, Debug)]
enum PricesAction {
    /// Add or change a model's price (USD per million tokens) in the project's
    /// `.agent-relay/prices.yaml`, or the user's file with `--user`.
    Set {
        /// The model, or the start of its name (`claude-sonnet-4` prices every dated
        /// version).
        model: String,
        /// Input tokens.
        #[arg(long)]
        input: f64,
        /// Output tokens.
        #[arg(long)]
        output: f64,
        /// Cached input read (default: the input price).
        #[arg(long)]
        cache_read: Option<f64>,
        /// Cache writes (default: the input price).
        #[arg(long)]
        cache_write: Option<f64>,
        /// Write the user's file instead of the project's.
        #[arg(long)]
        user: bool,
    },
}

fn source_text(s: &Source) -> String {
    match s {
        Source::Builtin => "built in".into(),
        Source::File(p) => p.display().to_string(),
    }
}

/// `agent-relay prices [--json]` and `agent-relay prices set ...`.
pub fn prices(args: PricesArgs) -> CliResult {
    let wd = crate::execute::workdir()?;
    if let Some(PricesAction::Set {
        model,
        input,
        output,
        cache_read,
        cache_write,
        user,
    }) = args.action
    {
        let price = Price {
            input,
            output,
            cache_read,
            cache_write,
        };
        let all = [Some(input), Some(output), cache_read, cache_write];
        if all.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(CliError::invalid(
                "prices are dollars per million tokens: finite and not negative",
            ));
        }
        if model.trim().is_empty() || model.chars().any(char::is_control) {
            return Err(CliError::invalid(
                "the model name is empty or not printable",
            ));
        }
        let path: PathBuf = if user {
            prices::user_file().ok_or_else(|| {
                CliError::runtime("no user config directory: set HOME or AGENT_RELAY_CONFIG_DIR")
            })?
        } else {
            prices::project_file(&wd)
        };
        let mut file = prices::read_file(&path).map_err(CliError::invalid)?;
        file.models.insert(model.clone(), price);
        write(&path, &file)?;
        eprintln!("{model}: priced in {}", path.display());
        return Ok(Exit::Success);
    }
    let table = PriceTable::load(&wd).map_err(CliError::invalid)?;
    if args.json {
        let rows: Vec<serde_json::Value> = table
            .entries()
            .map(|(m, p, s)| serde_json::json!({"model": m, "price": p, "source": source_text(s)}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(Exit::Success);
    }
    let width = table.entries().map(|(m, _, _)| m.len()).max().unwrap_or(5);
    println!(
        "{:width$}  {:>8}  {:>8}  {:>10}  {:>11}  from (USD per million tokens)",
        "model", "input", "output", "cache read", "cache write"
    );
    for (m, p, s) in table.entries() {
        println!(
            "{m:width$}  {:>8}  {:>8}  {:>10}  {:>11}  {}",
            p.input,
            p.output,
            p.cache_read.unwrap_or(p.input),
            p.cache_write.unwrap_or(p.input),
            source_text(s)
        );
    }
    Ok(Exit::Success)
}

/// Writes `file` as YAML (names quoted as JSON strings, which YAML reads back).
fn write(path: &std::path::Path, file: &PricesFile) -> CliResult<()> {
    let mut text = String::from("models:\n");
    for (model, p) in &file.models {
        let mut fields = vec![
            format!("input: {}", p.input),
            format!("output: {}", p.output),
        ];
        if let Some(c) = p.cache_read {
            fields.push(format!("cacheRead: {c}"));
        }
        if let Some(c) = p.cache_write {
            fields.push(format!("cacheWrite: {c}"));
        }
        text.push_str(&format!(
            "  {}: {{{}}}\n",
            serde_json::Value::String(model.clone()),
            fields.join(", ")
        ));
    }
    let fail = |e: std::io::Error| CliError::runtime(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)
}
