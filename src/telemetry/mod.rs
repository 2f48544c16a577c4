//! Telemetry set up once: the tracing subscriber (and, with the `otlp` feature, OpenTelemetry
//! export), and the metrics every part of the service records.

mod log_fields;
pub mod metrics;
#[cfg(feature = "otlp")]
mod otlp;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

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

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a terminal: escape codes in a log file or a collector are noise, and
    // writing them costs every span its fields' styling.
    let lines = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let lines = match format {
        LogFormat::Text => lines.fmt_fields(log_fields::LogFields).boxed(),
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
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(export)
        .try_init();
    guard
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
