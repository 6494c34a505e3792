//! The configuration an edge needs to answer calls on its own: its region's numbers and what
//! answers them — agents, and the published workflow versions numbers point at. The control
//! plane builds it; the edge caches it on disk and serves calls from it while the control plane
//! or the database is away.

use serde::{Deserialize, Serialize};

use crate::model::{normalize_dialable, AgentSpec, ProviderSpec};
use crate::workflow::Workflow;

/// Everything one edge routes calls with, at one configuration version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeConfigSnapshot {
    pub version: u64,
    pub region: String,
    pub numbers: Vec<RoutedNumber>,
    pub agents: Vec<AgentConfig>,
    /// SIP trunks and Twilio accounts this region may use, of every workspace it serves.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// The published workflow versions its numbers route to, exactly as published.
    #[serde(default)]
    pub workflows: Vec<WorkflowConfig>,
    /// The control plane's public recording key (64 hex characters): every recording is sealed
    /// to it on the edge's disk (`recording_spool.rs`). `None` from a control plane of an
    /// earlier release: the edge then records nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_key: Option<String>,
}

/// One published version of a workflow, as an edge runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowConfig {
    pub id: String,
    pub workspace_id: String,
    pub version: u32,
    pub definition: Workflow,
}

/// A workspace's provider as an edge uses it (credentials included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub id: String,
    pub workspace_id: String,
    pub spec: ProviderSpec,
}

/// A dialable number and its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedNumber {
    pub number: String,
    pub workspace_id: String,
    pub target: CallTarget,
    /// The number's home region; `None` when every region answers it alike. A snapshot also
    /// carries numbers whose home is elsewhere but that this region answers too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_region: Option<String>,
}

impl RoutedNumber {
    /// Whether `region` is this number's home (true everywhere for a number without one).
    pub fn is_home_in(&self, region: &str) -> bool {
        self.home_region
            .as_deref()
            .is_none_or(|home| home == region)
    }
}

/// What answers a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallTarget {
    Agent {
        agent_id: String,
    },
    /// A workflow, pinned to the version that was latest when the snapshot was built.
    Workflow {
        workflow_id: String,
        version: u32,
    },
}

/// An agent as an edge runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub id: String,
    pub workspace_id: String,
    pub spec: AgentSpec,
}

/// A routing decision: the number dialled and what answers it.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub number: &'a RoutedNumber,
    pub target: RouteTarget<'a>,
}

/// The agent or workflow version that answers a routed call.
#[derive(Debug, Clone, Copy)]
pub enum RouteTarget<'a> {
    Agent(&'a AgentConfig),
    Workflow(&'a WorkflowConfig),
}

impl Route<'_> {
    /// The agent that answers, when the target is an agent.
    pub fn agent(&self) -> Option<&AgentConfig> {
        match self.target {
            RouteTarget::Agent(agent) => Some(agent),
            RouteTarget::Workflow(_) => None,
        }
    }
}

impl EdgeConfigSnapshot {
    /// A snapshot in region `local` that routes `number` to one agent (`a` of workspace `w`)
    /// and holds nothing else: the smallest configuration an edge serves, which tests of the
    /// routing and of a whole edge build theirs from.
    pub fn single_agent(version: u64, number: &str, spec: AgentSpec) -> Self {
        Self {
            version,
            region: "local".into(),
            numbers: vec![RoutedNumber {
                number: number.into(),
                workspace_id: "w".into(),
                target: CallTarget::Agent {
                    agent_id: "a".into(),
                },
                home_region: None,
            }],
            agents: vec![AgentConfig {
                id: "a".into(),
                workspace_id: "w".into(),
                spec,
            }],
            providers: Vec::new(),
            workflows: Vec::new(),
            recording_key: None,
        }
    }

    /// The workspace's providers usable from this region, lowest `priority` first.
    pub fn providers_for(&self, workspace_id: &str) -> Vec<&ProviderConfig> {
        let mut providers: Vec<&ProviderConfig> = self
            .providers
            .iter()
            .filter(|p| p.workspace_id == workspace_id)
            .filter(|p| p.spec.serves(&self.region))
            .collect();
        providers.sort_by_key(|p| p.spec.priority());
        providers
    }

    /// The workspace's Twilio account `account_sid`, usable from this region: the one whose
    /// auth token signs the webhooks of that workspace's numbers.
    pub fn twilio_account(
        &self,
        workspace_id: &str,
        account_sid: &str,
    ) -> Option<(&ProviderConfig, &crate::model::TwilioAccountSpec)> {
        self.providers_for(workspace_id)
            .into_iter()
            .find_map(|p| match &p.spec {
                ProviderSpec::Twilio(a) if a.account_sid == account_sid => Some((p, a)),
                _ => None,
            })
    }

    /// Where a call to `dialled` goes, if anywhere: numbers match by their normal form
    /// ([`normalize_dialable`]), the same one the control plane keeps unique.
    pub fn route(&self, dialled: &str) -> Option<Route<'_>> {
        let wanted = normalize_dialable(dialled).ok()?;
        let mut matching = self
            .numbers
            .iter()
            .filter(|n| normalize_dialable(&n.number).is_ok_and(|normal| normal == wanted));
        let number = matching.next()?;
        if matching.next().is_some() {
            // Two routes for one number (a snapshot from before numbers were kept unique by
            // their normal form): answering either would hand one workspace's callers to another.
            return None;
        }
        let target = match &number.target {
            CallTarget::Agent { agent_id } => RouteTarget::Agent(self.agent(agent_id)?),
            CallTarget::Workflow {
                workflow_id,
                version,
            } => RouteTarget::Workflow(
                self.workflows
                    .iter()
                    .find(|w| &w.id == workflow_id && w.version == *version)?,
            ),
        };
        Some(Route { number, target })
    }

    /// The agent with id `id`, if the snapshot carries it.
    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The agents of `workspace_id`: those a workflow of that workspace may hand a call to.
    pub fn agents_of<'a>(&'a self, workspace_id: &'a str) -> impl Iterator<Item = &'a AgentConfig> {
        self.agents
            .iter()
            .filter(move |a| a.workspace_id == workspace_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialled_number_routes_to_its_agent_with_or_without_plus() {
        let spec: AgentSpec = serde_json::from_str(r#"{"name":"Desk"}"#).expect("agent");
        let snap = EdgeConfigSnapshot::single_agent(3, "+15550001", spec);
        let agent_of = |route: Option<Route<'_>>| match route.map(|r| r.target) {
            Some(RouteTarget::Agent(a)) => Some(a.id.clone()),
            _ => None,
        };
        assert_eq!(agent_of(snap.route("15550001")), Some("a".into()));
        assert_eq!(agent_of(snap.route("+15550001")), Some("a".into()));
        assert!(snap.route("+15550002").is_none());
        assert_eq!(agent_of(snap.route("1-555-0001")), Some("a".into()));
        assert!(snap.route("../15550001").is_none());
    }

    #[test]
    fn a_number_claimed_twice_in_one_snapshot_is_answered_for_neither() {
        let claim = |number: &str, workspace: &str| RoutedNumber {
            number: number.into(),
            workspace_id: workspace.into(),
            target: CallTarget::Agent {
                agent_id: "a".into(),
            },
            home_region: None,
        };
        let snap = EdgeConfigSnapshot {
            numbers: vec![claim("+15551234567", "a"), claim("15551234567", "b")],
            agents: vec![AgentConfig {
                id: "a".into(),
                workspace_id: "a".into(),
                spec: serde_json::from_str(r#"{"name":"Desk"}"#).expect("agent"),
            }],
            ..Default::default()
        };
        assert!(snap.route("+15551234567").is_none());
        assert!(snap.route("15551234567").is_none());
    }

    #[test]
    fn a_number_routes_to_the_pinned_version_of_its_workflow() {
        let definition: Workflow = serde_json::from_value(serde_json::json!({
            "name": "Flow", "start": "bye", "nodes": [{"id": "bye", "type": "end"}]
        }))
        .expect("workflow");
        let version = |v| WorkflowConfig {
            id: "f".into(),
            workspace_id: "w".into(),
            version: v,
            definition: definition.clone(),
        };
        let snap = EdgeConfigSnapshot {
            numbers: vec![RoutedNumber {
                number: "+15550009".into(),
                workspace_id: "w".into(),
                target: CallTarget::Workflow {
                    workflow_id: "f".into(),
                    version: 2,
                },
                home_region: None,
            }],
            workflows: vec![version(1), version(2)],
            ..Default::default()
        };
        match snap.route("+15550009").map(|r| r.target) {
            Some(RouteTarget::Workflow(w)) => assert_eq!(w.version, 2),
            other => panic!("expected the workflow, got {other:?}"),
        }
        let missing = EdgeConfigSnapshot {
            workflows: vec![version(1)],
            ..snap
        };
        assert!(missing.route("+15550009").is_none());
    }

    #[test]
    fn a_number_knows_whether_a_region_is_its_home() {
        let number = |home: Option<&str>| RoutedNumber {
            number: "+15550001".into(),
            workspace_id: "w".into(),
            target: CallTarget::Agent {
                agent_id: "a".into(),
            },
            home_region: home.map(Into::into),
        };
        assert!(number(Some("us")).is_home_in("us"));
        assert!(!number(Some("us")).is_home_in("eu"));
        assert!(number(None).is_home_in("eu"));
        let cached =
            r#"{"number":"demo","workspace_id":"w","target":{"type":"agent","agent_id":"a"}}"#;
        let old: RoutedNumber =
            serde_json::from_str(cached).expect("a snapshot cached before homes");
        assert_eq!(old.home_region, None);
    }
}
