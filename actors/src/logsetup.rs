//! Logging setup: one `tracing` subscriber per process whose filter can be
//! replaced at run time (`mcrctl log-level set`), text or JSON lines on
//! stderr. Workers write through a non-blocking writer so that no log line
//! ever blocks the data path.

use std::sync::Arc;

use mcr::logging::{LogFormat, LogLevels};
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

/// Keeps the non-blocking writer's thread alive; drop flushes it.
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Install the subscriber. `prefix` tags every line (workers use it to say
/// which interface they serve).
pub fn init(levels: &LogLevels, format: LogFormat, non_blocking: bool) -> (LevelSetter, Guard) {
    let (filter, handle) = reload::Layer::new(levels.targets());
    let (writer, guard) = if non_blocking {
        let (w, g) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .finish(std::io::stderr());
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(w),
            Some(g),
        )
    } else {
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        )
    };
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
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
    };
    // The fmt layer sits under the reloadable filter so that one reload
    // changes what every layer sees.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .try_init();
    install_panic_hook();
    let setter: LevelSetter = Arc::new(move |l: &LogLevels| {
        let t: Targets = l.targets();
        let _ = handle.reload(t);
    });
    (setter, Guard(guard))
}
