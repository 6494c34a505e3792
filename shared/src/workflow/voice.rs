//! A workflow's `voice`: the speech-to-text, language model, text-to-speech and turn-taking
//! settings its own lines, menus and generated lines use — the same sections, with the same
//! meaning and checks, as an agent's. It is read as the voice part of an [`AgentSpec`], so the
//! edge builds a flow's pipeline exactly as it builds an agent's.

use crate::model::AgentSpec;

use super::{Workflow, WorkflowError};

/// The sections `voice` may hold.
pub const VOICE_SECTIONS: [&str; 5] = ["stt", "llm", "llm_fallback", "tts", "turn"];

/// The agent-shaped voice of `workflow`: its name and the `voice` sections, everything else at
/// its default (no prompt, no tools). Every problem is reported as a `voice.*` field.
pub fn voice_spec(workflow: &Workflow) -> Result<AgentSpec, Vec<WorkflowError>> {
    let error = |field: String, message: String| WorkflowError {
        node: None,
        field,
        message,
    };
    let mut sections = match &workflow.voice {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map.clone(),
        _ => {
            return Err(vec![error(
                "voice".into(),
                "must be an object of voice sections (`stt`, `llm`, `llm_fallback`, `tts`, `turn`)"
                    .into(),
            )])
        }
    };
    let unknown: Vec<WorkflowError> = sections
        .keys()
        .filter(|k| !VOICE_SECTIONS.contains(&k.as_str()))
        .map(|k| {
            error(
                format!("voice.{k}"),
                "is not a voice section: use `stt`, `llm`, `llm_fallback`, `tts` or `turn`".into(),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let name = if workflow.name.trim().is_empty() {
        "workflow".to_owned()
    } else {
        workflow.name.clone()
    };
    sections.insert("name".into(), name.into());
    let spec: AgentSpec = serde_path_to_error::deserialize(serde_json::Value::Object(sections))
        .map_err(|e| vec![error(format!("voice.{}", e.path()), e.inner().to_string())])?;
    let problems: Vec<WorkflowError> = spec
        .validate()
        .into_iter()
        .map(|e| error(format!("voice.{}", e.field), e.message))
        .collect();
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(voice: serde_json::Value) -> Workflow {
        serde_json::from_value(serde_json::json!({
            "name": "Line", "start": "bye", "voice": voice,
            "nodes": [{"id": "bye", "type": "end"}]
        }))
        .expect("workflow")
    }

    #[test]
    fn no_voice_means_the_default_providers() {
        let spec = voice_spec(&flow(serde_json::Value::Null)).expect("valid");
        assert_eq!(spec.name, "Line");
        assert!(spec.tts.is_none() && spec.stt.is_none() && spec.llm.is_none());
    }

    #[test]
    fn voice_sections_are_read_and_checked_like_an_agents() {
        let spec = voice_spec(&flow(serde_json::json!({
            "tts": {"provider": "espeak"}, "stt": {"provider": "local"},
            "turn": {"end_of_turn_silence_ms": 500}
        })))
        .expect("valid");
        assert_eq!(spec.turn.end_of_turn_silence_ms, 500);
        let errors = voice_spec(&flow(serde_json::json!({"tts": {"provider": "nope"}})))
            .expect_err("unknown provider");
        assert_eq!(errors[0].field, "voice.tts.provider");
        let errors = voice_spec(&flow(serde_json::json!({"system_prompt": "x"})))
            .expect_err("not a voice section");
        assert_eq!(errors[0].field, "voice.system_prompt");
    }
}

/// Words a caller answers a menu with, whatever the flow.
const MENU_WORDS: &[&str] = &[
    "yes", "no", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// What callers are expected to say in `workflow`: the quoted values its conditions compare
/// answers with (`choice == 'sales'`), and the usual menu words. They shape the offline
/// recogniser's grammar for the flow's `gather` nodes.
pub fn expected_phrases(workflow: &Workflow) -> Vec<String> {
    let mut phrases: Vec<String> = MENU_WORDS.iter().map(|w| (*w).to_string()).collect();
    for node in &workflow.nodes {
        let super::Node::Condition(condition) = node else {
            continue;
        };
        for branch in &condition.branches {
            for literal in quoted_literals(&branch.when) {
                if !literal.trim().is_empty() && !phrases.contains(&literal) {
                    phrases.push(literal);
                }
            }
        }
    }
    phrases
}

/// The contents of `'...'` and `"..."` literals in an expression (without escapes' backslashes).
fn quoted_literals(expression: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = expression.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut literal = String::new();
        let mut escaped = false;
        for inner in chars.by_ref() {
            match inner {
                _ if escaped => {
                    literal.push(inner);
                    escaped = false;
                }
                '\\' => escaped = true,
                _ if inner == c => break,
                _ => literal.push(inner),
            }
        }
        literals.push(literal);
    }
    literals
}

#[cfg(test)]
mod phrase_tests {
    use super::*;

    #[test]
    fn condition_literals_and_menu_words_are_expected() {
        let workflow: Workflow = serde_json::from_value(serde_json::json!({
            "name": "menu", "start": "ask",
            "nodes": [
                {"id": "ask", "type": "gather", "save_as": "choice", "next": "route"},
                {"id": "route", "type": "condition", "branches": [
                    {"when": "choice == 'sales' || choice == \"2\"", "next": "bye"},
                    {"when": "choice.contains('talk to billing')", "next": "bye"}], "else": "ask"},
                {"id": "bye", "type": "end"}]
        }))
        .expect("a workflow");
        let phrases = expected_phrases(&workflow);
        assert!(phrases.contains(&"yes".to_string()) && phrases.contains(&"nine".to_string()));
        assert!(phrases.ends_with(&["sales".into(), "2".into(), "talk to billing".into()]));
    }

    #[test]
    fn unterminated_and_escaped_quotes_do_not_panic() {
        assert_eq!(quoted_literals(r"a == 'it\'s'"), ["it's"]);
        assert_eq!(quoted_literals("a == 'open"), ["open"]);
        assert!(quoted_literals("a > 3").is_empty());
    }
}
