//! The local web dashboard of agent-relay: the runs of a directory, each run's step graph
//! with live states, attempts, outputs, messages and questions, each agent's terminal,
//! and buttons for what the CLI can do to a live run. Everything is read from the run
//! directories (`events.jsonl`, `messages.jsonl`, step files and transcripts), so it
//! works the same for a live run and a finished one, in the coordinator's process
//! (`run --dashboard`) or another (`serve`). It binds 127.0.0.1 only and every request
//! needs the server's random token.

pub mod actions;
pub mod follow;
pub mod graph;
pub mod patch;
pub mod runs_list;
pub mod screen;
pub mod server;
pub mod tail;
pub mod token;
pub mod view;
pub mod wake;

pub use server::{Config, Listening, ServeError, url};
pub use token::Token;
