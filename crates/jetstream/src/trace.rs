//! W3C trace context in NATS message headers.

use async_nats::HeaderMap;
use mailbus_telemetry::propagation::{self, Extractor, Injector};

/// Writes the trace context of `span` into `headers`.
pub fn inject_trace(span: &tracing::Span, headers: &mut HeaderMap) {
    propagation::inject(span, &mut Writer(headers));
}

/// Makes the trace in `headers` (if any) the parent of `span`.
pub fn adopt_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(headers) = headers {
        propagation::adopt(span, &Reader(headers));
    }
}

struct Writer<'a>(&'a mut HeaderMap);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Reader<'a>(&'a HeaderMap);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}
