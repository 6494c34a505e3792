use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn no_endpoint_means_no_export() {
    assert_eq!(
        OtelSettings::from_env(env(&[("PATH", "/bin")])).unwrap(),
        None
    );
    let off = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    assert_eq!(OtelSettings::from_env(off).unwrap(), None);
    let none = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    assert_eq!(OtelSettings::from_env(none).unwrap(), None);
}

#[test]
fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_kept() {
    let base = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_SERVICE_NAME", "edge-eu"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]);
    let settings = OtelSettings::from_env(base).unwrap().unwrap();
    assert_eq!(settings.traces_endpoint, "http://collector:4318/v1/traces");
    assert_eq!(settings.service_name, "edge-eu");
    assert_eq!(
        settings.sampler,
        SamplerChoice::ParentBasedTraceIdRatio(0.25)
    );
    let full = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:9999/t"),
    ]);
    let settings = OtelSettings::from_env(full).unwrap().unwrap();
    assert_eq!(settings.traces_endpoint, "http://other:9999/t");
    assert_eq!(settings.service_name, "freya");
    assert_eq!(settings.sampler, SamplerChoice::ParentBasedAlwaysOn);
}

#[test]
fn unsupported_values_name_the_variable() {
    for (variable, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ] {
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (variable, value),
        ]);
        let error = OtelSettings::from_env(vars).unwrap_err().to_string();
        assert!(error.contains(variable), "{error}");
    }
    let ratio = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
    ]);
    let error = OtelSettings::from_env(ratio).unwrap_err().to_string();
    assert!(error.contains("OTEL_TRACES_SAMPLER_ARG"), "{error}");
}

#[test]
fn log_format_parses_json_and_text_only() {
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
    assert!("yaml".parse::<LogFormat>().is_err());
}
