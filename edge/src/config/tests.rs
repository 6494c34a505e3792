//! The edge configuration's defaults and the problems it reports, by key.

use std::time::Duration;

use super::*;

fn config(rtp: serde_json::Value) -> EdgeConfig {
    serde_json::from_value(serde_json::json!({
        "region": "local",
        "data_dir": "/tmp/edge",
        "control": {"url": "http://127.0.0.1:1", "shared_secret": "s"},
        "rtp": rtp,
    }))
    .expect("parses")
}

fn keys(config: &EdgeConfig) -> Vec<String> {
    config.validate().into_iter().map(|p| p.key).collect()
}

#[test]
fn codecs_and_rtcp_interval_are_validated_by_key() {
    let ok = config(serde_json::json!({"codecs": ["opus", "PCMU"]}));
    assert!(keys(&ok).is_empty(), "{:?}", keys(&ok));
    assert_eq!(ok.rtp.rtcp_interval_ms, 5_000);
    let bad = config(serde_json::json!({"codecs": ["g729"], "rtcp_interval_ms": 10}));
    assert_eq!(keys(&bad), ["rtp.codecs", "rtp.rtcp_interval_ms"]);
    assert_eq!(
        keys(&config(serde_json::json!({"codecs": []}))),
        ["rtp.codecs"]
    );
}

#[test]
fn hold_timeout_defaults_to_an_hour_and_is_validated_by_key() {
    assert_eq!(config(serde_json::json!({})).rtp.hold_timeout_ms, 3_600_000);
    let set = config(serde_json::json!({"hold_timeout_ms": 120_000}));
    assert_eq!(set.rtp.hold_timeout_ms, 120_000);
    let bad = config(serde_json::json!({"hold_timeout_ms": 10}));
    assert_eq!(keys(&bad), ["rtp.hold_timeout_ms"]);
}

#[test]
fn connection_limits_default_when_absent_and_zero_is_refused_by_key() {
    let defaults = config(serde_json::json!({}));
    assert!(keys(&defaults).is_empty(), "{:?}", keys(&defaults));
    assert_eq!(defaults.http.listener().limits().max_per_ip, 1024);
    assert_eq!(
        defaults.sip.tcp_limits().timeouts.idle,
        Duration::from_secs(2400)
    );
    let mut bad = defaults;
    bad.http.header_timeout_ms = 0;
    bad.sip.tcp_max_connections_per_ip = 0;
    assert_eq!(
        keys(&bad),
        ["http.header_timeout_ms", "sip.tcp_max_connections_per_ip"]
    );
}

#[test]
fn invite_flood_limits_have_defaults_and_are_validated_by_key() {
    let ok = config(serde_json::json!({}));
    assert!(keys(&ok).is_empty(), "{:?}", keys(&ok));
    assert!(ok.sip.max_unconfirmed_per_source <= ok.sip.max_unconfirmed);
    let mut bad = ok.clone();
    bad.sip.invites_per_second_per_source = 0.0;
    bad.sip.invite_burst_per_source = 0;
    bad.sip.max_unconfirmed = 4;
    bad.sip.max_unconfirmed_per_source = 5;
    assert_eq!(
        keys(&bad),
        [
            "sip.invites_per_second_per_source",
            "sip.invite_burst_per_source",
            "sip.max_unconfirmed_per_source"
        ]
    );
}

#[test]
fn egress_defaults_to_public_targets_only_and_a_bad_proxy_is_named() {
    let default = config(serde_json::json!({}));
    assert!(!default.egress.allow_private_targets);
    assert_eq!(default.egress.proxy, None);
    let mut bad: EdgeConfig = serde_json::from_value(serde_json::json!({
        "region": "local",
        "data_dir": "/tmp/edge",
        "control": {"url": "http://127.0.0.1:1", "shared_secret": "s"},
        "egress": {"allow_private_targets": true, "proxy": "not a proxy"},
    }))
    .expect("parses");
    assert!(bad.egress.allow_private_targets);
    assert_eq!(keys(&bad), ["egress.proxy"]);
    bad.egress.proxy = Some("http://proxy.internal:3128".into());
    assert!(keys(&bad).is_empty(), "{:?}", keys(&bad));
}

#[test]
fn media_addresses_are_checked_for_their_family_by_key() {
    let ok = config(
        serde_json::json!({"ip": "0.0.0.0", "public_ip": "203.0.113.5",
                                       "ip_v6": "::", "public_ip_v6": "2001:db8::5"}),
    );
    assert!(keys(&ok).is_empty(), "{:?}", keys(&ok));
    assert_eq!(config(serde_json::json!({})).rtp.ip_v6, None);
    let swapped = config(
        serde_json::json!({"public_ip": "2001:db8::5", "ip_v6": "10.0.0.1",
                                            "public_ip_v6": "not an address"}),
    );
    assert_eq!(
        keys(&swapped),
        ["rtp.public_ip", "rtp.ip_v6", "rtp.public_ip_v6"]
    );
}

#[test]
fn a_section_with_one_key_keeps_the_defaults_of_the_others_and_refuses_unknown_keys() {
    let base = serde_json::json!({
        "region": "local",
        "data_dir": "/tmp/edge",
        "control": {"url": "http://127.0.0.1:1", "shared_secret": "s"},
        "rtp": {"port_min": 21_000},
        "sip": {"ring_ms": 100},
        "http": {"public_url": "https://edge1.example.com"},
    });
    let partial: EdgeConfig = serde_json::from_value(base.clone()).expect("parses");
    assert_eq!(partial.rtp.port_min, 21_000);
    assert_eq!(
        (partial.rtp.port_max, partial.rtp.inactivity_timeout_ms),
        (29_999, 30_000)
    );
    assert_eq!(partial.rtp.codecs, ["pcmu", "pcma", "opus"]);
    assert_eq!(partial.sip.ring_ms, 100);
    assert_eq!(partial.sip.addr, "127.0.0.1:5060");
    assert_eq!(
        (partial.sip.tcp_max_connections, partial.sip.max_unconfirmed),
        (1024, 64)
    );
    assert_eq!(partial.sip.invites_per_second_per_source, 10.0);
    assert_eq!(partial.http.addr, "127.0.0.1:8081");
    assert_eq!(partial.http.max_connections, 4096);
    assert!(keys(&partial).is_empty(), "{:?}", keys(&partial));
    for section in ["rtp", "sip", "http"] {
        let mut typo = base.clone();
        typo[section]["prot_min"] = serde_json::json!(1);
        let error = serde_json::from_value::<EdgeConfig>(typo).expect_err("unknown key");
        assert!(error.to_string().contains("prot_min"), "{section}: {error}");
    }
}

#[test]
fn the_tls_listener_needs_its_files_and_a_bare_ip_listens_on_5061() {
    let mut config = config(serde_json::json!({}));
    assert_eq!(config.sip.tls_listen_addr(), None, "off by default");
    config.sip.tls_listen = Some("0.0.0.0".into());
    assert_eq!(
        config.sip.tls_listen_addr(),
        Some("0.0.0.0:5061".parse().expect("address"))
    );
    config.sip.external_ip = Some("not an ip".into());
    config.sip.tls_public_addr = Some("nowhere".into());
    assert_eq!(
        keys(&config),
        [
            "sip.external_ip",
            "sip.tls_public_addr",
            "sip.tls_cert_file",
            "sip.tls_key_file"
        ]
    );
    config.sip.tls_listen = Some("bad:address:x".into());
    assert!(keys(&config).contains(&"sip.tls_listen".to_owned()));
}

#[test]
fn control_urls_list_replicas_after_url_and_each_is_checked_by_key() {
    let with = |control: serde_json::Value| -> EdgeConfig {
        serde_json::from_value(serde_json::json!({
            "region": "local",
            "data_dir": "/tmp/edge",
            "control": control,
        }))
        .expect("parses")
    };
    let both = with(serde_json::json!({
        "url": "http://a:7070",
        "urls": ["http://b:7070", "http://a:7070"],
        "shared_secret": "s",
    }));
    assert!(keys(&both).is_empty(), "{:?}", keys(&both));
    assert_eq!(both.control.all_urls(), ["http://a:7070", "http://b:7070"]);
    let list_only = with(serde_json::json!({"urls": ["http://b:7070"], "shared_secret": "s"}));
    assert!(keys(&list_only).is_empty());
    assert_eq!(list_only.control.all_urls(), ["http://b:7070"]);
    let none = with(serde_json::json!({"shared_secret": "s"}));
    assert_eq!(keys(&none), ["control.url"]);
    let bad = with(serde_json::json!({"urls": ["http://b:7070", "b:7070"], "shared_secret": "s"}));
    assert_eq!(keys(&bad), ["control.urls[1]"]);
}
