//! The process-wide `tracing` subscriber: formatted logs, plus an OpenTelemetry layer when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format must be text or json, not {other:?}")),
        }
    }
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter. Blocks, so call it outside async code (or in `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {error}");
        }
    }
}

fn otlp_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()))
}

/// Installs the global subscriber. `default_service_name` is used unless `OTEL_SERVICE_NAME` says
/// otherwise. Must be called inside a Tokio runtime: the OTLP exporter is a tonic client.
pub fn init(default_service_name: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = if otlp_configured() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .context("building the OTLP span exporter")?;
        let mut resource = Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name(default_service_name.to_owned());
        }
        Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
    } else {
        None
    };
    // RUST_LOG filters the logs only: a quiet log must not cost us the traces, which keep every span at
    // INFO and above.
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("mailbus")).with_filter(LevelFilter::INFO));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(WithTraceIds::text(format::Format::default()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds::json(format::Format::default().json()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(logs.with_filter(filter))
        .try_init()
        .context("installing the tracing subscriber")?;
    Ok(Telemetry { provider })
}

/// Adds the OpenTelemetry trace and span ids of the event's span to each log line, so a line can be
/// found from its trace and a trace from its line: as `trace_id=… span_id=…` at the end of a text line,
/// as `"trace_id"` and `"span_id"` members of a JSON line. Lines outside any traced span carry neither.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    fn text(inner: F) -> Self {
        WithTraceIds { inner, json: false }
    }

    fn json(inner: F) -> Self {
        WithTraceIds { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let Some((trace_id, span_id)) = trace_ids(ctx) else { return writer.write_str(&line) };
        if self.json
            && let Some(rest) = line.strip_prefix('{')
        {
            write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}")
        } else {
            let body = line.trim_end_matches('\n');
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

/// The trace and span ids of the event's span (its explicit parent, else the current span), when
/// OpenTelemetry records it.
fn trace_ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    use opentelemetry::trace::TraceContextExt;
    let id = ctx.parent_span()?.id();
    // No span's extensions are locked here: the line was formatted before.
    let context = tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(&id, dispatch))?;
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}
