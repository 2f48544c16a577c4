//! OpenTelemetry export of the spans over OTLP (HTTP/protobuf), feature `otlp`: configured by the
//! standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_RESOURCE_ATTRIBUTES`…), and off while no endpoint is set. The service is `identityd`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// The layer that exports spans, and its provider (to flush at exit); `None` without an endpoint.
pub fn layer<S>() -> anyhow::Result<
    Option<(
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        SdkTracerProvider,
    )>,
>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    // The exporter reads the variables itself; the endpoint is named for the HTTP path it needs.
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder().with_http().with_endpoint(traces).build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("identityd").build())
        .build();
    let tracer = provider.tracer("identityd");
    Ok(Some((tracing_opentelemetry::layer().with_tracer(tracer), provider)))
}
