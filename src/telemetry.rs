//! Logging: `tracing` to stderr, text or JSON, filtered by `RUST_LOG` (default `info`),
//! ANSI colours only when stderr is a terminal (docs/spec.md §7). Request lines
//! (`http::metrics`, at `info`) carry method, route pattern, status and latency: never a
//! query string, header value or body, so no code, token, secret or key reaches a log.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Flushes the log lines still queued when dropped: keep it alive until the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber. Lines are formatted on the calling thread and written to
/// stderr by a background thread (`tracing_appender::non_blocking`), so a request never
/// waits on a `write(2)`; the queue holds 128,000 lines and, when full, makes callers wait
/// rather than drop a line (`lossy(false)`). A second call (tests) keeps the first
/// subscriber.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only when a person reads stderr on a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tessera-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}
