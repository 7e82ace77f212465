//! Logging setup: one `tracing` subscriber per process whose filter can be
//! replaced at run time (`mcrctl log-level set`), text or JSON lines on
//! stderr, and optionally (`logging.file` in the config, or `mcrd
//! supervisor --log-file`) the same lines in
//! a file that `tracing-appender`'s rolling writer rotates. Workers write
//! through a non-blocking writer so that no log line ever blocks the data
//! path; with a log file, the supervisor copies their stderr into it
//! (`relay_worker_stderr`), since a worker that has dropped its privileges
//! could not open the next file at rotation. That copy is a task on the
//! supervisor's runtime per worker, not a thread.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use mcr::logging::{LogFile, LogFormat, LogLevels, Rotation};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

/// Applies new levels to this process's subscriber.
pub type LevelSetter = Arc<dyn Fn(&LogLevels) + Send + Sync>;

/// Log every panic as an error line first (operators read the log, not
/// stray stderr), then let the default hook print it as usual (with a
/// backtrace when RUST_BACKTRACE asks for one).
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(target: "Supervisor", "panic in thread {thread} at {at}: {msg}");
        default(info);
    }));
}

/// Keeps the non-blocking writers' threads alive; drop flushes them.
pub struct Guard(#[allow(dead_code)] Vec<tracing_appender::non_blocking::WorkerGuard>);

/// The open log file of this process, for the workers' lines. A mutex
/// around the non-blocking writer keeps one worker's line whole.
static FILE: OnceLock<Mutex<tracing_appender::non_blocking::NonBlocking>> = OnceLock::new();

/// Open the rolling writer: `PATH.YYYY-MM-DD[-HH]` files in PATH's
/// directory, PATH itself a link to the current one (or, with no
/// rotation, the file).
fn open_file(f: &LogFile) -> Result<tracing_appender::rolling::RollingFileAppender, String> {
    let dir = match f.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = f
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("log file {}: no file name", f.path.display()))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    use tracing_appender::rolling::{RollingFileAppender, Rotation as R};
    let rotation = match f.rotation {
        Rotation::Hourly => R::HOURLY,
        Rotation::Daily => R::DAILY,
        Rotation::Never => R::NEVER,
    };
    let mut b = RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(name)
        .max_log_files(f.keep);
    if f.rotation != Rotation::Never {
        b = b.latest_symlink(name);
    }
    b.build(&dir)
        .map_err(|e| format!("log file {}: {e}", f.path.display()))
}

/// Copy a worker's stderr, line by line, to ours and to the log file, on
/// a task of the supervisor's runtime (not a thread per worker). Runs
/// until the worker's end closes (it exited). Must be called on the
/// runtime.
pub fn relay_worker_stderr(from: tokio::process::ChildStderr) {
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut r = tokio::io::BufReader::new(from);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
            // Short blocking writes, as the supervisor's own lines are:
            // the file writer only queues the line for its thread.
            let _ = std::io::stderr().write_all(&line);
            if let Some(f) = FILE.get() {
                if let Ok(mut w) = f.lock() {
                    let _ = w.write_all(&line);
                }
            }
            line.clear();
        }
    });
}

/// Whether workers' lines must pass through the supervisor.
pub fn has_file() -> bool {
    FILE.get().is_some()
}

fn fmt_layer(
    format: LogFormat,
    writer: tracing_subscriber::fmt::writer::BoxMakeWriter,
) -> Box<dyn Layer<Registry> + Send + Sync> {
    match format {
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(true),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(writer)
                .with_target(true)
                .with_current_span(true),
        ),
    }
}

/// Install the subscriber: stderr, and `file` if given (an error if it
/// cannot be opened; nothing is installed then).
pub fn init(
    levels: &LogLevels,
    format: LogFormat,
    non_blocking: bool,
    file: Option<&LogFile>,
) -> Result<(LevelSetter, Guard), String> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    let (filter, handle) = reload::Layer::new(levels.targets());
    let mut guards = Vec::new();
    let stderr = if non_blocking {
        let (w, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .finish(std::io::stderr());
        guards.push(g);
        BoxMakeWriter::new(w)
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    let writer = match file {
        Some(f) => {
            // Not lossy: the file is the record an operator keeps, and a
            // supervisor (never a worker) writes it.
            let (w, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(open_file(f)?);
            guards.push(g);
            let _ = FILE.set(Mutex::new(w.clone()));
            BoxMakeWriter::new(stderr.and(w))
        }
        None => stderr,
    };
    // The fmt layer sits under the reloadable filter so that one reload
    // changes what every layer sees.
    let _ = tracing_subscriber::registry()
        .with(fmt_layer(format, writer).with_filter(filter))
        .try_init();
    install_panic_hook();
    let setter: LevelSetter = Arc::new(move |l: &LogLevels| {
        let t: Targets = l.targets();
        let _ = handle.reload(t);
    });
    Ok((setter, Guard(guards)))
}
