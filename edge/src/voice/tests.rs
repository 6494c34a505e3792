//! The voice factory's choices: which providers an agent's sections and the edge's environment
//! select, and the errors that name the agent's field.

use super::*;
use crate::egress::EgressConfig;
use crate::test_support::local_egress;

fn spec(json: serde_json::Value) -> AgentSpec {
    serde_json::from_value(json).expect("agent")
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// A factory with no defaults whose egress allows this machine (the test servers).
fn local_factory() -> VoiceFactory {
    VoiceFactory::new(
        reqwest::Client::new(),
        local_egress(),
        VoiceDefaults::default(),
    )
}

#[test]
fn an_agent_without_sections_gets_the_offline_demo() {
    let factory = local_factory();
    let voice = factory
        .build(&spec(serde_json::json!({"name": "D"})))
        .expect("builds");
    assert_eq!(
        (voice.stt.name(), voice.llm.provider(), voice.tts.name()),
        ("local", "rules", "espeak")
    );
    assert!(voice.tts_fallback.is_none());
    assert_eq!(
        voice.live_stt.as_ref().map(|s| s.name()),
        Some("local"),
        "pocketsphinx hears turns as they are spoken"
    );
}

#[tokio::test]
async fn an_stt_base_url_in_the_environment_transcribes_for_agents_without_an_stt_section() {
    let fake = crate::speech::fakes::FakeOpenAiSpeech::start()
        .await
        .expect("fake starts");
    fake.push_transcripts(["what are your opening hours"]);
    let defaults = VoiceDefaults::from_env(vars(&[
        ("FREYA_STT_BASE_URL", &fake.base_url()),
        ("FREYA_STT_MODEL", "whisper-large-v3"),
    ]));
    let factory = VoiceFactory::new(reqwest::Client::new(), local_egress(), defaults);
    let voice = factory
        .build(&spec(serde_json::json!({"name": "D"})))
        .expect("builds");
    assert_eq!(voice.stt.name(), "openai");
    assert!(voice.live_stt.is_none());
    let heard = voice
        .stt
        .transcribe(SampleRate::Hz8000, &[100; 8000])
        .await
        .expect("transcribed");
    assert_eq!(heard.text, "what are your opening hours");
    let sent = fake.utterances();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].model, "whisper-large-v3");
    // An agent's own `stt` section still wins over the environment.
    let own = factory
        .build(&spec(
            serde_json::json!({"name": "D", "stt": {"provider": "local"}}),
        ))
        .expect("builds");
    assert_eq!(own.stt.name(), "local");
}

#[test]
fn the_environment_model_answers_agents_without_an_llm_section() {
    let defaults = VoiceDefaults::from_env(vars(&[("OPENAI_API_KEY", "sk-x")]));
    assert_eq!(defaults.llm_base_url.as_deref(), Some(OPENAI_BASE_URL));
    let local = VoiceDefaults::from_env(vars(&[
        ("FREYA_LLM_BASE_URL", "http://localhost:11434/v1"),
        ("FREYA_LLM_MODEL", "llama3.2"),
    ]));
    assert_eq!(local.llm_api_key, None);
    let factory = VoiceFactory::new(reqwest::Client::new(), local_egress(), local);
    let voice = factory
        .build(&spec(serde_json::json!({"name": "D"})))
        .expect("builds");
    assert_eq!(
        (voice.llm.provider(), voice.llm_model.as_str()),
        ("openai", "llama3.2")
    );
    assert_eq!(VoiceDefaults::from_env(vars(&[])).llm_base_url, None);
}

#[test]
fn configured_providers_are_built_and_errors_name_the_field() {
    let factory = local_factory();
    let voice = factory
        .build(&spec(serde_json::json!({"name": "D",
            "stt": {"provider": "deepgram"},
            "llm": {"provider": "anthropic", "api_key": "k", "temperature": 0.2},
            "tts": {"provider": "elevenlabs", "voice": "abc"}})))
        .expect("builds");
    assert_eq!(
        (voice.stt.name(), voice.llm.provider(), voice.tts.name()),
        ("deepgram", "anthropic", "elevenlabs")
    );
    assert_eq!(voice.live_stt.map(|s| s.name()), Some("deepgram"));
    assert_eq!(voice.temperature, Some(0.2));
    assert!(voice.tts_fallback.is_some());
    let field = |json| {
        factory
            .build(&spec(json))
            .err()
            .map(|e| e.field)
            .unwrap_or_default()
    };
    assert_eq!(
        field(serde_json::json!({"name": "D", "llm": {"provider": "gpt"}})),
        "llm.provider"
    );
    assert_eq!(
        field(serde_json::json!({"name": "D", "llm": {"provider": "anthropic"}})),
        "llm.api_key"
    );
    assert_eq!(
        field(serde_json::json!({"name": "D", "tts": {"provider": "elevenlabs", "voice": "a/b"}})),
        "tts.voice"
    );
    assert_eq!(
        field(serde_json::json!({"name": "D", "stt": {"provider": "x"}})),
        "stt.provider"
    );
    assert_eq!(
        field(serde_json::json!({"name": "D", "llm_fallback": {"provider": "anthropic"}})),
        "llm_fallback.api_key"
    );
}

#[test]
fn a_fallback_model_stands_behind_the_primary() {
    let factory = local_factory();
    let voice = factory
        .build(&spec(serde_json::json!({"name": "D",
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "timeout_ms": 800},
            "llm_fallback": {"provider": "rules"}})))
        .expect("builds");
    assert_eq!(
        (voice.llm.provider(), voice.llm_model.as_str()),
        ("fallback", "gpt-4o-mini")
    );
}

#[test]
fn a_custom_base_url_on_a_private_address_is_refused_by_field() {
    let guarded = Egress::new(&EgressConfig::default()).expect("client");
    let factory = VoiceFactory::new(reqwest::Client::new(), guarded, VoiceDefaults::default());
    for (section, field) in [
        ("llm", "llm.base_url"),
        ("stt", "stt.base_url"),
        ("tts", "tts.base_url"),
    ] {
        let agent = spec(serde_json::json!({
            "name": "D",
            section: {"provider": "openai", "base_url": "http://169.254.169.254/v1", "api_key": "k"}
        }));
        let error = factory.build(&agent).err().expect("refused");
        assert_eq!(error.field, field, "{error:?}");
    }
}
