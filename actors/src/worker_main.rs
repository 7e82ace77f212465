//! `mcrd worker`: the entry point of a data-plane process. It takes the IPC
//! socket it inherited as fd 3 and runs the io_uring loop from
//! `mcr::dataplane::worker` until the supervisor says stop or goes away.

use std::process::ExitCode;

use mcr::dataplane::worker::{self, Exit, Hooks};
use mcr::logging::{LogFormat, LogLevels};

pub fn main(interface: &str, index: u32, log_format: &str) -> ExitCode {
    let format = if log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let (setter, _guard) = match crate::logsetup::init(&LogLevels::default(), format, true, None) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mcrd worker: {e}");
            return ExitCode::from(2);
        }
    };
    let span = tracing::info_span!("worker", iface = %interface, idx = index);
    let _enter = span.enter();
    let ipc = match mcr::ipc::fdpass::take_worker_fd3() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("mcrd worker: {e}");
            return ExitCode::from(2);
        }
    };
    let hooks = Hooks {
        set_levels: Box::new(move |l| setter(l)),
    };
    match worker::run(ipc, hooks) {
        Ok(Exit::Shutdown) | Ok(Exit::SupervisorGone) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "DataPlane", "worker for {interface} failed: {e}");
            eprintln!("mcrd worker ({interface}): {e}");
            ExitCode::FAILURE
        }
    }
}
