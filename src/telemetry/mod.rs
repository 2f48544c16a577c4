//! Telemetry set up once: the tracing subscriber (and, with the `otlp` feature, OpenTelemetry
//! export), and the metrics every part of the service records.

mod call_fields;
mod log_fields;
pub mod metrics;
#[cfg(feature = "otlp")]
mod otlp;

pub use call_fields::{CallFields, call_span};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::{EnvFilter, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber once. `RUST_LOG` filters (default `info`, sqlx at `warn`). Calling it
/// again is harmless, so tests may each ask for logs. With the `otlp` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported too, until the answer is dropped.
#[must_use = "spans still buffered are exported when the guard is dropped"]
pub fn init(format: LogFormat) -> TelemetryGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    // Colours only for a terminal: escape codes in a log file or a collector are noise, and
    // writing them costs every span its fields' styling.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let lines = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .with_ansi(ansi);
    let lines = match format {
        LogFormat::Text => lines
            .fmt_fields(log_fields::LogFields)
            .event_format(call_fields::WithCallFields(tracing_subscriber::fmt::format()))
            .boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    #[cfg(feature = "otlp")]
    let (export, guard) = match otlp::layer() {
        Ok(Some((layer, provider))) => (
            Some(layer),
            TelemetryGuard {
                provider: Some(provider),
            },
        ),
        Ok(None) => (None, TelemetryGuard::default()),
        Err(e) => {
            eprintln!("identityd: OpenTelemetry export is off: {e:#}");
            (None, TelemetryGuard::default())
        }
    };
    #[cfg(not(feature = "otlp"))]
    let (export, guard) = (None::<tracing_subscriber::layer::Identity>, TelemetryGuard::default());
    let exported = export.is_some();
    let only_text_reads_call_fields = format == LogFormat::Text && !ansi && !exported && !filter.selects_by_span_fields;
    let installed = tracing_subscriber::registry()
        .with(filter.layer)
        .with(lines)
        .with(export)
        .try_init();
    if installed.is_ok() {
        SPANS_EXPORTED.store(exported, std::sync::atomic::Ordering::Relaxed);
        if only_text_reads_call_fields {
            call_fields::defer_call_fields();
        }
    }
    guard
}

static SPANS_EXPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported (OpenTelemetry), and so worth recording fields into after they were
/// made: a text log writes a span's fields only on the lines logged inside it.
pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// What `RUST_LOG` leaves unset: `info`, with sqlx's statement lines only from `warn` up.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

/// The log filter `spec` (`RUST_LOG`) describes, or the default when it is unset, blank or
/// unreadable.
///
/// Directives that name only targets and levels (`info`, `identityd=debug,h2=off`: all most
/// operators write) are served by a static filter, decided once per call site. `EnvFilter`, needed
/// only for span and field directives (`[rpc{method=Login}]=debug`), keeps every span in a map
/// behind a lock that each call takes several times over (on making, entering, leaving, recording
/// into and closing its span), which with many threads is a cost on every call.
fn log_filter(spec: Option<&str>) -> LogFilter {
    use tracing_subscriber::Layer;

    // Directives as written, without the blanks around them (`info, sqlx=warn`).
    let spec = spec.map(|spec| {
        spec.split(',')
            .map(str::trim)
            .filter(|directive| !directive.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    });
    let spec = match spec.as_deref().filter(|spec| !spec.is_empty()) {
        Some(spec) if spec.contains(['[', '{']) => match EnvFilter::try_new(spec) {
            Ok(filter) => {
                return LogFilter {
                    layer: filter.boxed(),
                    selects_by_span_fields: true,
                };
            }
            Err(e) => {
                eprintln!("identityd: RUST_LOG is not a filter ({e}); logging at {DEFAULT_LOG_FILTER}");
                DEFAULT_LOG_FILTER
            }
        },
        Some(spec) => spec,
        None => DEFAULT_LOG_FILTER,
    };
    let layer = match spec.parse::<Targets>() {
        Ok(filter) => filter.boxed(),
        Err(e) => {
            eprintln!("identityd: RUST_LOG is not a filter ({e}); logging at {DEFAULT_LOG_FILTER}");
            DEFAULT_LOG_FILTER
                .parse::<Targets>()
                .expect("the default filter parses")
                .boxed()
        }
    };
    LogFilter {
        layer,
        selects_by_span_fields: false,
    }
}

/// The filter `RUST_LOG` asks for.
struct LogFilter {
    layer: Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>,
    /// Whether it has span directives, which read spans' fields when the spans are made.
    selects_by_span_fields: bool,
}

/// Keeps the span export running; dropping it sends what is still buffered.
#[derive(Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("identityd: exporting the last spans failed: {e}");
        }
    }
}

/// Log lines written into memory, for tests that read what a subscriber wrote.
#[cfg(test)]
#[derive(Clone, Default)]
struct CapturedLines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedLines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for CapturedLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Whether an event at `level` with `target` passes the filter `spec` makes, inside a span
    /// `rpc` whose method is `method` when one is given.
    fn passes(spec: Option<&str>, target_is_sqlx: bool, level: Level, method: Option<&str>) -> bool {
        let subscriber = tracing_subscriber::registry().with(log_filter(spec).layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = method.map(|method| tracing::error_span!("rpc", method));
            let _entered = span.as_ref().map(tracing::Span::enter);
            match (target_is_sqlx, level) {
                (true, Level::INFO) => tracing::enabled!(target: "sqlx::query", Level::INFO),
                (true, _) => tracing::enabled!(target: "sqlx::query", Level::WARN),
                (false, Level::DEBUG) => tracing::enabled!(Level::DEBUG),
                (false, Level::INFO) => tracing::enabled!(Level::INFO),
                (false, _) => tracing::enabled!(Level::WARN),
            }
        })
    }

    #[test]
    fn unset_blank_or_unreadable_filters_log_at_info_with_sqlx_at_warn() {
        for spec in [
            None,
            Some(""),
            Some("  "),
            Some("sqlx=warn=info"),
            Some("[rpc{=}]=nope"),
        ] {
            assert!(passes(spec, false, Level::INFO, None), "{spec:?}");
            assert!(!passes(spec, false, Level::DEBUG, None), "{spec:?}");
            assert!(!passes(spec, true, Level::INFO, None), "{spec:?}");
            assert!(passes(spec, true, Level::WARN, None), "{spec:?}");
        }
    }

    #[test]
    fn targets_and_levels_filter_as_written() {
        assert!(!passes(Some("warn"), false, Level::INFO, None));
        assert!(passes(Some("warn"), false, Level::WARN, None));
        assert!(passes(Some("debug"), false, Level::DEBUG, None));
        assert!(passes(Some("info"), true, Level::INFO, None));
        assert!(!passes(Some("info, sqlx=off"), true, Level::WARN, None));
    }

    #[test]
    fn span_directives_select_calls_by_their_fields() {
        let spec = Some("info,[rpc{method=Login}]=debug");
        assert!(passes(spec, false, Level::DEBUG, Some("Login")));
        assert!(!passes(spec, false, Level::DEBUG, Some("ValidateSession")));
        assert!(!passes(spec, false, Level::DEBUG, None));
        assert!(passes(spec, false, Level::INFO, None));
    }
}
