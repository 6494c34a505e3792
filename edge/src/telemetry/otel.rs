//! The OpenTelemetry side of [`super::init`]: the standard `OTEL_*` variables read once into
//! [`OtelSettings`] (validated, naming the variable that is wrong), and the tracer provider built
//! from them. Exporting is off unless an OTLP endpoint is set.
//!
//! Read here: `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` (`otlp` or `none`),
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` appended),
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL, preferred), `OTEL_EXPORTER_OTLP_PROTOCOL`
//! and `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (only `http/protobuf`), `OTEL_SERVICE_NAME`
//! (default `freya`), `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
//! `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TIMEOUT` are read by the exporter itself.

use std::collections::HashMap;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Why the `OTEL_*` variables cannot be used, or the exporter not built.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// A variable holds a value this build does not support.
    #[error("{variable}={value:?} is not supported: {expected}")]
    Unsupported {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
    /// The OTLP exporter could not be built.
    #[error("while building the OTLP trace exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER`): the SDK's samplers, by their standard names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerChoice {
    fn sampler(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// Where and what to export, from the `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    /// The full URL spans are POSTed to (`.../v1/traces`).
    pub traces_endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    pub sampler: SamplerChoice,
}

impl OtelSettings {
    /// The settings the environment asks for; `None` when no export is wanted (no endpoint,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env(
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<Self>, OtelError> {
        let vars: HashMap<String, String> = environment
            .into_iter()
            .filter(|(k, v)| k.starts_with("OTEL_") && !v.trim().is_empty())
            .collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_owned());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match get("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(OtelError::Unsupported {
                    variable: "OTEL_TRACES_EXPORTER",
                    value: other.to_owned(),
                    expected: "otlp or none",
                })
            }
        }
        for variable in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = get(variable) {
                if value != "http/protobuf" {
                    return Err(OtelError::Unsupported {
                        variable,
                        value,
                        expected: "http/protobuf (OTLP over HTTP; point it at the collector's \
                                   port 4318)",
                    });
                }
                break;
            }
        }
        let traces_endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => full,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let sampler = sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;
        Ok(Some(Self {
            traces_endpoint,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "freya".to_owned()),
            sampler,
        }))
    }
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<SamplerChoice, OtelError> {
    let ratio = || -> Result<f64, OtelError> {
        match arg.as_deref() {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(OtelError::Unsupported {
                    variable: "OTEL_TRACES_SAMPLER_ARG",
                    value: a.to_owned(),
                    expected: "a ratio between 0 and 1",
                }),
            },
        }
    };
    Ok(match name.as_deref() {
        None | Some("parentbased_always_on") => SamplerChoice::ParentBasedAlwaysOn,
        Some("always_on") => SamplerChoice::AlwaysOn,
        Some("always_off") => SamplerChoice::AlwaysOff,
        Some("traceidratio") => SamplerChoice::TraceIdRatio(ratio()?),
        Some("parentbased_always_off") => SamplerChoice::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => SamplerChoice::ParentBasedTraceIdRatio(ratio()?),
        Some(other) => {
            return Err(OtelError::Unsupported {
                variable: "OTEL_TRACES_SAMPLER",
                value: other.to_owned(),
                expected: "always_on, always_off, traceidratio, parentbased_always_on, \
                           parentbased_always_off or parentbased_traceidratio",
            })
        }
    })
}

/// The tracer provider: with a batch OTLP exporter when `settings` say so, else one that
/// exports nothing (spans still get trace ids, for logs and call records).
pub(super) fn provider(settings: Option<&OtelSettings>) -> Result<SdkTracerProvider, OtelError> {
    let Some(settings) = settings else {
        return Ok(SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name("freya").build())
            .build());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_endpoint.clone())
        .build()
        .map_err(|e| OtelError::Exporter {
            endpoint: settings.traces_endpoint.clone(),
            reason: e.to_string(),
        })?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(settings.sampler.sampler())
        .with_resource(resource)
        .build())
}
