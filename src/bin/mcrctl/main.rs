//! `mcrctl`: the control client of `mcrd`. Every command is one request
//! over the control socket; results print as tables, or as JSON with
//! `--json`. Any error exits non-zero with the daemon's message on stderr.
//!
//! `args` is the command line, `commands` what each command does, `render`
//! how results look as text (`igmp` for the IGMP tables, `trace` for
//! `mcrctl trace`), `out` how they
//! reach stdout.

mod args;
mod commands;
mod igmp;
mod out;
mod pim_render;
mod render;
mod trace;

use std::process::ExitCode;

use clap::Parser;
use mcr::control::client::ClientError;

/// A failure, with the exit status it deserves. An empty message exits
/// without a word (the reader of stdout went away).
pub struct Fail(u8, String);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Connect { .. } => Fail(3, e.to_string()),
            _ => Fail(1, e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            if !msg.is_empty() {
                out::error(&format!("mcrctl: {msg}"));
            }
            ExitCode::from(code)
        }
    }
}
