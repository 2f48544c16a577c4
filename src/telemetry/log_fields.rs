//! How a text log line writes its fields: as tracing-subscriber's default does, with one shortcut.
//!
//! The default writes every string field through `Debug`, which quotes and escapes it one
//! character at a time. Every call's `rpc` span has three string fields (service, method, request
//! id), formatted when the span is made (or, see `call_fields`, when the first line inside the
//! call is logged), and each line logged inside a call repeats them. A string that needs no
//! escaping — printable ASCII without `"` or `\` — is written here as `name="value"` at once, the
//! very text the default writes; every other field (messages, errors, numbers, strings that need
//! escaping, and anything while colours are on) goes to the default visitor unchanged. The fields
//! are gathered in a buffer of the thread's and handed over in one piece.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text format's fields (see the module's documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return write_fields(writer, fields);
        }
        // Written into this thread's buffer first and then in one piece: a span's fields are kept
        // in a string of their own, which would otherwise grow (allocate again) field by field.
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                write_fields(Writer::new(&mut *buffer), fields)?;
                let written = writer.write_str(&buffer);
                if buffer.capacity() > MAX_KEPT_BUFFER {
                    *buffer = String::with_capacity(BUFFER_CAPACITY);
                }
                written
            }
            // A field's own formatting logged something: written directly.
            Err(_) => write_fields(writer, fields),
        })
    }
}

const BUFFER_CAPACITY: usize = 512;
/// A buffer grown past this by a long line is not kept.
const MAX_KEPT_BUFFER: usize = 16 * 1024;

thread_local! {
    static BUFFER: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(BUFFER_CAPACITY));
}

fn write_fields<R: RecordFields>(writer: Writer<'_>, fields: R) -> fmt::Result {
    let mut visitor = FieldWriter {
        writer,
        is_empty: true,
        result: Ok(()),
    };
    fields.record(&mut visitor);
    visitor.result
}

struct FieldWriter<'writer> {
    writer: Writer<'writer>,
    /// Whether nothing has been written yet (no separating space needed).
    is_empty: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// Lets the default visitor write one field.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // The default skips the `log.` fields of records from the `log` crate.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn write_plain(&mut self, name: &str, value: &str) -> fmt::Result {
        if !self.is_empty {
            self.writer.write_char(' ')?;
        }
        self.is_empty = false;
        self.writer.write_str(name)?;
        self.writer.write_str("=\"")?;
        self.writer.write_str(value)?;
        self.writer.write_char('"')
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let special = name == "message" || name.starts_with("r#") || name.starts_with("log.");
        if self.result.is_err() || special || self.writer.has_ansi_escapes() || !needs_no_escape(value) {
            return self.by_default(field, |v| v.record_str(field, value));
        }
        self.result = self.write_plain(name, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.by_default(field, |v| v.record_debug(field, value));
    }
}

/// Whether `Debug` would write `value` unchanged between its quotes.
pub(super) fn needs_no_escape(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    /// Formats `record`'s fields with both formatters.
    fn both(record: impl Fn()) -> (String, String) {
        use tracing_subscriber::layer::SubscriberExt;

        use crate::telemetry::CapturedLines as Lines;

        let (ours, default) = (Lines::default(), Lines::default());
        let (o, d) = (ours.clone(), default.clone());
        let layer = |fields: bool, lines: Lines| {
            let layer = tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_writer(move || lines.clone());
            if fields {
                layer.fmt_fields(LogFields).boxed()
            } else {
                layer.fmt_fields(DefaultFields::new()).boxed()
            }
        };
        use tracing_subscriber::Layer;
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer(true, o)), &record);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer(false, d)), &record);
        (ours.text(), default.text())
    }

    #[test]
    fn lines_are_written_exactly_as_the_default_writes_them() {
        let (ours, default) = both(|| {
            let span = tracing::info_span!(
                "rpc",
                service = "identity.v1.SessionService",
                method = "ValidateSession",
                peer = %"127.0.0.1:5000",
                request_id = "0f8fad5b-d9cb-469f-a165-70867728950e",
                code = tracing::field::Empty,
            );
            span.record("code", "OK");
            let _entered = span.enter();
            tracing::warn!(
                name = "quote \" backslash \\ newline \n escape \u{1b}[31m",
                unicode = "zoë",
                empty = "",
                count = 3,
                flag = true,
                error = &std::fmt::Error as &(dyn std::error::Error + 'static),
                "a message with \"quotes\" and \u{1b}[31m"
            );
            tracing::info!(r#type = "plain", "another");
        });
        assert!(
            ours.contains(r#"request_id="0f8fad5b-d9cb-469f-a165-70867728950e" code="OK""#),
            "{ours}"
        );
        assert_eq!(ours, default);
    }
}
