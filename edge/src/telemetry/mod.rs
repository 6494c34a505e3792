//! Logs and traces for every binary that runs a call (`freya dev`, `freya control`,
//! `freya edge`): `tracing` to stderr as text or JSON lines, and, when the standard `OTEL_*`
//! variables name a collector, the same spans exported as OpenTelemetry traces over OTLP
//! (HTTP/protobuf). It lives in the edge, not in `freya-shared`, because the exporter brings an
//! HTTP client and its runtime, which the shared crate must not depend on.
//!
//! The OpenTelemetry layer is installed even when nothing is exported: every span then has a
//! trace id, so a call's log lines and its record carry one id that a later trace search can
//! use, at the cost of a few allocations per span (calls open a handful of spans per turn,
//! never one per frame).

mod call_trace;
mod otel;

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use call_trace::{continue_trace, trace_id_of, CallTrace};
pub use otel::{OtelError, OtelSettings, SamplerChoice};

/// How log lines are written: `text` for a person at a terminal, `json` (one object a line,
/// with the spans' fields) for a log shipper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line; a call's lines carry `call_id`, `workspace_id` and `trace_id`
    /// in their `spans`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("--log-format must be json or text, not `{other}`")),
        }
    }
}

/// Keeps the trace exporter alive; dropping it flushes and stops the exporter.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sends every finished span the exporter still holds (blocking; call it off the async
    /// runtime, e.g. in `spawn_blocking`).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber: logs in `format` filtered by `RUST_LOG` (default `info`) to
/// stderr, and the OpenTelemetry layer configured from `environment` (the `OTEL_*` variables).
/// Returns `Ok(None)` when a subscriber was already installed (tests, a second call).
pub fn init(
    format: LogFormat,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<Option<Telemetry>, OtelError> {
    let settings = OtelSettings::from_env(environment)?;
    init_with(format, settings, std::io::stderr)
}

/// [`init`] with the settings already read and the log lines going to `writer` (tests read
/// them back).
pub fn init_with<W>(
    format: LogFormat,
    settings: Option<OtelSettings>,
    writer: W,
) -> Result<Option<Telemetry>, OtelError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = otel::provider(settings.as_ref())?;
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "freya");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(traced_targets()),
        )
        .try_init();
    match installed {
        Ok(()) => Ok(Some(Telemetry { provider })),
        Err(_) => Ok(None),
    }
}

/// Only Freya's own spans at `info` become trace spans: the HTTP, gRPC and SQL libraries'
/// spans would flood a trace (and the exporter's own requests would trace themselves).
fn traced_targets() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_target("freya_edge", tracing::Level::INFO)
        .with_target("freya_control", tracing::Level::INFO)
        .with_target("freya", tracing::Level::INFO)
}

#[cfg(test)]
mod tests;
