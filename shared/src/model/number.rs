//! A phone number (or any dialable name, like the dev setup's `demo`) and what answers it: an
//! agent, or the latest published version of a workflow — exactly one of the two. A number has a
//! home region (or none: then every region answers it) and may be reachable in further regions,
//! whose edges answer it too; outbound calls from it prefer the home region.

use serde::{Deserialize, Deserializer, Serialize};

use super::dialable::normalize_dialable;
use super::FieldError;

/// What a customer writes to route a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumberSpec {
    /// E.164 (`+15551234567`) or a SIP user part of letters, digits, `*#._-`; stored in its
    /// normal form ([`normalize_dialable`]), whatever spelling was written.
    pub number: String,
    /// The home region: its edges answer the number and place its outbound calls first.
    /// `None` for every region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Further regions whose edges also answer it (and place its calls when the home region
    /// cannot); only with a home `region`, which is not repeated here. `null` reads as none.
    #[serde(default, deserialize_with = "null_as_none")]
    pub regions: Vec<String>,
    /// The agent that answers calls to this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The workflow that answers calls to this number (its latest published version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// What a number routes to, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberTarget<'a> {
    Agent(&'a str),
    Workflow(&'a str),
}

impl PhoneNumberSpec {
    /// The spec with its number in normal form, as it is stored and routed; unchanged when the
    /// number does not validate (then [`Self::validate`] says why).
    pub fn normalized(mut self) -> Self {
        if let Ok(normal) = normalize_dialable(&self.number) {
            self.number = normal;
        }
        self
    }

    /// Every problem with this number, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(problem) = normalize_dialable(&self.number) {
            errors.push(FieldError::new("number", problem.to_string()));
        }
        if let Some(region) = &self.region {
            if !is_region_name(region) {
                errors.push(FieldError::new(
                    "region",
                    "must be 1-64 lowercase letters, digits or `-`",
                ));
            }
        }
        errors.extend(self.regions_problems());
        match (&self.agent_id, &self.workflow_id) {
            (Some(_), Some(_)) => errors.push(FieldError::new(
                "workflow_id",
                "give `agent_id` or `workflow_id`, not both",
            )),
            (None, None) => errors.push(FieldError::new(
                "agent_id",
                "give the `agent_id` or the `workflow_id` that answers this number",
            )),
            (Some(agent), None) if !crate::ids::is_uuid(agent) => {
                errors.push(FieldError::new("agent_id", "must be an agent id (a UUID)"))
            }
            (None, Some(workflow)) if !crate::ids::is_uuid(workflow) => errors.push(
                FieldError::new("workflow_id", "must be a workflow id (a UUID)"),
            ),
            _ => {}
        }
        errors
    }

    /// Every region whose edges answer this number, home first; empty for "every region".
    pub fn reachable_regions(&self) -> Vec<&str> {
        self.region
            .iter()
            .chain(&self.regions)
            .map(String::as_str)
            .collect()
    }

    fn regions_problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.regions.len() > MAX_EXTRA_REGIONS {
            errors.push(FieldError::new(
                "regions",
                format!("at most {MAX_EXTRA_REGIONS} further regions"),
            ));
            return errors;
        }
        if !self.regions.is_empty() && self.region.is_none() {
            errors.push(FieldError::new(
                "regions",
                "give the home `region` too: a number without one is answered in every region",
            ));
        }
        for (i, name) in self.regions.iter().enumerate() {
            let field = format!("regions[{i}]");
            if !is_region_name(name) {
                errors.push(FieldError::new(
                    field,
                    "must be 1-64 lowercase letters, digits or `-`",
                ));
            } else if self.region.as_ref() == Some(name) {
                errors.push(FieldError::new(
                    field,
                    format!("`{name}` is the home `region` already"),
                ));
            } else if let Some(first) = self.regions[..i].iter().position(|r| r == name) {
                errors.push(FieldError::new(
                    field,
                    format!("`{name}` is listed already, as regions[{first}]"),
                ));
            }
        }
        errors
    }

    /// The number's target; `None` only for a spec that does not validate.
    pub fn target(&self) -> Option<NumberTarget<'_>> {
        match (&self.agent_id, &self.workflow_id) {
            (Some(agent), None) => Some(NumberTarget::Agent(agent)),
            (None, Some(workflow)) => Some(NumberTarget::Workflow(workflow)),
            _ => None,
        }
    }
}

/// `regions: null` as no further regions, as in a merge patch (the API documents it nullable).
fn null_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// How many regions a number may be reachable in besides its home: a bound on what one change
/// writes and on the snapshot fan-out.
pub const MAX_EXTRA_REGIONS: usize = 16;

/// Whether `name` is a usable region name (`local`, `eu-west`, `us-east-1`).
pub fn is_region_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(number: &str) -> PhoneNumberSpec {
        PhoneNumberSpec {
            number: number.into(),
            region: None,
            regions: Vec::new(),
            agent_id: Some(crate::ids::new_id()),
            workflow_id: None,
        }
    }

    fn with_regions(home: Option<&str>, extra: &[&str]) -> PhoneNumberSpec {
        PhoneNumberSpec {
            region: home.map(Into::into),
            regions: extra.iter().map(|r| r.to_string()).collect(),
            ..spec("+15551234567")
        }
    }

    fn fields(spec: &PhoneNumberSpec) -> Vec<String> {
        spec.validate().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_number_is_reachable_in_its_home_region_then_its_further_regions() {
        let number = with_regions(Some("us"), &["eu", "ap-south-1"]);
        assert!(number.validate().is_empty());
        assert_eq!(number.reachable_regions(), ["us", "eu", "ap-south-1"]);
        assert!(with_regions(None, &[]).reachable_regions().is_empty());
    }

    #[test]
    fn further_regions_name_the_offending_entry() {
        assert_eq!(
            fields(&with_regions(Some("us"), &["eu", "EU"])),
            ["regions[1]"]
        );
        assert_eq!(
            fields(&with_regions(Some("us"), &["eu", "us"])),
            ["regions[1]"]
        );
        assert_eq!(
            fields(&with_regions(Some("us"), &["eu", "ap", "eu"])),
            ["regions[2]"]
        );
        assert_eq!(fields(&with_regions(None, &["eu"])), ["regions"]);
        let many: Vec<String> = (0..=MAX_EXTRA_REGIONS).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(fields(&with_regions(Some("us"), &many)), ["regions"]);
    }

    #[test]
    fn regions_default_to_none_when_absent_or_null() {
        for text in [
            r#"{"number": "demo", "agent_id": "x"}"#,
            r#"{"number": "demo", "agent_id": "x", "regions": null}"#,
        ] {
            let parsed: PhoneNumberSpec = serde_json::from_str(text).expect("parses");
            assert!(parsed.regions.is_empty(), "{text}");
        }
    }

    #[test]
    fn e164_and_sip_user_names_are_accepted() {
        for n in ["+15551234567", "demo", "support-line", "100"] {
            assert!(spec(n).validate().is_empty(), "{n}");
        }
    }

    #[test]
    fn a_number_is_kept_in_its_normal_form() {
        assert_eq!(spec("1 (555) 123-4567").normalized().number, "+15551234567");
        assert_eq!(spec("demo").normalized().number, "demo");
        assert_eq!(spec("not a number").normalized().number, "not a number");
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for n in ["", "+1", "+1555abc", "has space", "sip:x@y", "0207946000"] {
            assert_eq!(spec(n).validate()[0].field, "number", "{n}");
        }
    }

    #[test]
    fn a_number_targets_exactly_one_agent_or_workflow() {
        let mut both = spec("demo");
        both.workflow_id = Some(crate::ids::new_id());
        assert_eq!(both.validate()[0].field, "workflow_id");
        let mut neither = spec("demo");
        neither.agent_id = None;
        assert_eq!(neither.validate()[0].field, "agent_id");
        let mut flow = spec("demo");
        flow.agent_id = None;
        flow.workflow_id = Some("not-a-uuid".into());
        assert_eq!(flow.validate()[0].field, "workflow_id");
        flow.workflow_id = Some(crate::ids::new_id());
        assert!(flow.validate().is_empty());
        assert!(matches!(flow.target(), Some(NumberTarget::Workflow(_))));
    }
}
