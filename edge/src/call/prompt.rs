//! Filling an agent's `{{variables}}` into its system prompt and first message. The call's own
//! values (`caller_number`, `called_number`, `call_id`) are offered beside the agent's
//! `variables`, and win over them; a placeholder nobody defines is left as written, so a
//! missing variable is visible in the transcript rather than silently blank.

use std::collections::BTreeMap;

/// The values a call's templates may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PromptVariables {
    values: BTreeMap<String, String>,
}

impl PromptVariables {
    /// The agent's variables plus the call's own.
    pub(crate) fn for_call(
        agent: &BTreeMap<String, String>,
        caller_number: &str,
        called_number: &str,
        call_id: &str,
    ) -> Self {
        let mut values = agent.clone();
        values.insert("caller_number".into(), caller_number.into());
        values.insert("called_number".into(), called_number.into());
        values.insert("call_id".into(), call_id.into());
        Self { values }
    }

    /// `template` with every `{{name}}` (spaces inside the braces allowed) replaced.
    pub(crate) fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            match after.find("}}") {
                Some(close) => {
                    let name = after[..close].trim();
                    match self.values.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&rest[open..open + 2 + close + 2]),
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_of_the_agent_and_the_call_are_filled_in() {
        let mut agent = BTreeMap::new();
        agent.insert("business_name".to_string(), "Acme".to_string());
        agent.insert("call_id".to_string(), "not this".to_string());
        let vars = PromptVariables::for_call(&agent, "+1555", "demo", "c-1");
        assert_eq!(
            vars.render("{{business_name}} for {{ caller_number }} on {{called_number}} ({{call_id}}), {{unknown}} {{open"),
            "Acme for +1555 on demo (c-1), {{unknown}} {{open"
        );
    }
}
