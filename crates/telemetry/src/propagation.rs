//! W3C trace context (`traceparent`, `tracestate`) in and out of message carriers, so that one message's
//! spans in every role share one trace.

use opentelemetry::propagation::TextMapPropagator;
pub use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the context of `span` into a carrier. Without an OpenTelemetry layer the span has no context and
/// nothing is written.
pub fn inject(span: &tracing::Span, carrier: &mut dyn Injector) {
    TraceContextPropagator::new().inject_context(&span.context(), carrier);
}

/// Makes the trace found in `carrier` the parent of `span`. A carrier without trace context leaves the
/// span a root.
pub fn adopt(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    // Fails only when no OpenTelemetry layer is installed, where there is nothing to link.
    let _ = span.set_parent(parent);
}

/// The trace id of `span` as 32 hex digits, or `None` when the span is not recorded by OpenTelemetry.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}
