//! A call's span, whose fields the text log writes only once a line is logged inside the call.
//!
//! Every call's `rpc` span names its service, method, peer and request id, and the text log puts
//! them on each line logged inside the call. tracing-subscriber formats a span's fields into text
//! when the span is made, on every call, although at the default `RUST_LOG=info` almost no call
//! logs a line: that formatting was the largest part of what tracing cost a call. So, when only
//! the text log reads the fields, the span is made without them and they are kept in it as values
//! ([`CallFields`]); the first line logged inside the call ([`WithCallFields`]) writes them into
//! the span's formatted fields, in the very form they would have had.
//!
//! They are real span fields, formatted at once, whenever something else reads them: the JSON
//! log, span export (OpenTelemetry), span directives in `RUST_LOG` (which select calls by their
//! fields), and coloured output (whose styling is the formatter's own).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Span, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// What a call's span names.
pub struct CallFields {
    service: &'static str,
    method: &'static str,
    peer: Option<SocketAddr>,
    request_id: RequestIdText,
}

/// The request id's text, kept inline: it is at most [`RequestIdText::MAX`] bytes.
struct RequestIdText {
    len: u8,
    bytes: [u8; RequestIdText::MAX],
}

impl RequestIdText {
    const MAX: usize = 64;

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl CallFields {
    /// The fields of a call; a request id longer than 64 bytes, or not UTF-8, is left out.
    pub fn new(service: &'static str, method: &'static str, peer: Option<SocketAddr>, request_id: &[u8]) -> Self {
        let mut text = RequestIdText {
            len: 0,
            bytes: [0; RequestIdText::MAX],
        };
        if request_id.len() <= RequestIdText::MAX && std::str::from_utf8(request_id).is_ok() {
            text.bytes[..request_id.len()].copy_from_slice(request_id);
            text.len = request_id.len() as u8;
        }
        Self {
            service,
            method,
            peer,
            request_id: text,
        }
    }

    /// Writes the fields as the text log's field formatter writes them (`name="value"`, a string
    /// that needs escaping as `Debug` escapes it; the peer's address as it displays).
    fn write_to(&self, out: &mut String) -> fmt::Result {
        let string = |out: &mut String, name: &str, value: &str| {
            if super::log_fields::needs_no_escape(value) {
                write!(out, "{name}=\"{value}\"")
            } else {
                write!(out, "{name}={value:?}")
            }
        };
        string(out, "service", self.service)?;
        out.push(' ');
        string(out, "method", self.method)?;
        if let Some(peer) = self.peer {
            write!(out, " peer={peer}")?;
        }
        out.push(' ');
        string(out, "request_id", self.request_id.as_str())
    }
}

static DEFERRED: AtomicBool = AtomicBool::new(false);

/// Makes calls' spans keep their fields as values until a line is logged (see the module's
/// documentation); set once the subscriber that reads them is installed.
pub(super) fn defer_call_fields() {
    DEFERRED.store(true, Ordering::Relaxed);
}

/// The span of one call.
pub fn call_span(fields: CallFields) -> Span {
    make_span(fields, DEFERRED.load(Ordering::Relaxed))
}

fn make_span(fields: CallFields, deferred: bool) -> Span {
    if !deferred {
        return tracing::info_span!(
            "rpc",
            service = fields.service,
            method = fields.method,
            peer = fields.peer.map(tracing::field::display),
            request_id = fields.request_id.as_str(),
            code = tracing::field::Empty,
        );
    }
    let span = tracing::info_span!("rpc");
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(fields);
        }
    });
    span
}

/// The text log's line format `F`, which first writes into each span of the line the call fields
/// it still keeps as values.
pub struct WithCallFields<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithCallFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let mut extensions = span.extensions_mut();
                let Some(fields) = extensions.remove::<CallFields>() else {
                    continue;
                };
                if let Some(formatted) = extensions.get_mut::<FormattedFields<N>>() {
                    let mut text = String::with_capacity(128 + formatted.fields.len());
                    fields.write_to(&mut text)?;
                    if !formatted.fields.is_empty() {
                        text.push(' ');
                        text.push_str(&formatted.fields);
                    }
                    formatted.fields = text;
                }
            }
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::CapturedLines as Lines;
    use crate::telemetry::log_fields::LogFields;

    /// The text `log` writes (the service's text format), with the call's fields deferred or not.
    fn logged(deferred: bool, fields: impl Fn() -> CallFields, log: impl Fn(&Span)) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(LogFields);
        let layer = layer.event_format(WithCallFields(tracing_subscriber::fmt::format().without_time()));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = make_span(fields(), deferred);
            log(&span);
        });
        lines.text()
    }

    fn both(fields: impl Fn() -> CallFields + Copy, log: impl Fn(&Span) + Copy) -> String {
        let (deferred, at_once) = (logged(true, fields, log), logged(false, fields, log));
        assert_eq!(deferred, at_once);
        deferred
    }

    fn a_call() -> CallFields {
        CallFields::new(
            "identity.v1.SessionService",
            "ValidateSession",
            Some("127.0.0.1:5000".parse().unwrap()),
            b"0f8fad5b-d9cb-469f-a165-70867728950e",
        )
    }

    #[test]
    fn deferred_fields_are_written_as_fields_made_at_once_are() {
        let lines = both(a_call, |span| {
            let _entered = span.enter();
            tracing::info!(user = "lou", "first");
            tracing::info_span!("inner", step = 2).in_scope(|| tracing::warn!("second"));
        });
        let expected = r#"rpc{service="identity.v1.SessionService" method="ValidateSession" peer=127.0.0.1:5000 request_id="0f8fad5b-d9cb-469f-a165-70867728950e"}"#;
        assert_eq!(lines.matches(expected).count(), 2, "{lines}");
        assert!(lines.contains("}:inner{step=2}:"), "{lines}");
        // An event given the span as its parent, without entering it.
        let lines = both(a_call, |span| tracing::info!(parent: span, "answered"));
        assert!(lines.contains(expected), "{lines}");
    }

    #[test]
    fn missing_peers_and_odd_request_ids_are_written_as_at_once() {
        for id in [&b"req \"42\"\\"[..], &b""[..], &[b'a'; 65][..], &b"\xff"[..]] {
            let lines = both(
                || CallFields::new("unknown", "unknown", None, id),
                |span| span.in_scope(|| tracing::info!("line")),
            );
            assert!(
                lines.contains("rpc{service=\"unknown\" method=\"unknown\" request_id="),
                "{lines}"
            );
        }
    }

    #[test]
    fn a_call_that_logs_nothing_formats_nothing() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .fmt_fields(LogFields)
            .event_format(WithCallFields(tracing_subscriber::fmt::format()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = make_span(a_call(), true);
            span.with_subscriber(|(id, dispatch)| {
                let registry = dispatch.downcast_ref::<Registry>().unwrap();
                let span = registry.span(id).unwrap();
                let extensions = span.extensions();
                assert!(extensions.get::<CallFields>().is_some(), "kept as values");
                let formatted = extensions.get::<FormattedFields<LogFields>>().unwrap();
                assert_eq!(formatted.fields, "", "no text made");
            });
        });
        assert!(lines.text().is_empty());
    }
}
