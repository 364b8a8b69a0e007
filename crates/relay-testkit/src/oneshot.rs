//! One-shot mode (`claude -p TASK`, `codex exec TASK`, ...): run the script, print
//! `fake-<cli> done`, exit 0.

use std::io::Write;

use crate::argv::Cli;
use crate::script::{self, Host};
use crate::sys;

struct OneShot;

impl Host for OneShot {
    fn reply(&mut self, text: &str) {
        // A closed stdout must not turn into a panic: the agent carries on like a CLI would.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn stderr(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn sleep(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn exit(&mut self, code: i32) -> ! {
        let _ = std::io::stdout().flush();
        script::log_lifecycle("end");
        std::process::exit(code)
    }

    fn crash(&mut self) -> ! {
        let _ = std::io::stdout().flush();
        sys::disable_core_dumps();
        std::process::abort()
    }

    fn ignore_term(&mut self) {
        sys::ignore_term_signals();
    }
}

pub(crate) fn run(cli: Cli, task: &str) -> ! {
    let markers = match script::parse(task) {
        Ok(m) => m,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "{msg}");
            std::process::exit(2);
        }
    };
    let mut host = OneShot;
    script::log_lifecycle("start");
    script::run(&markers, task, &mut host);
    host.reply(&format!("fake-{} done", cli.name()));
    host.exit(0)
}
