//! The configuration an edge needs to answer calls on its own: its region's numbers and what
//! answers them. The control plane builds it; the edge caches it on disk and serves calls from it
//! while the control plane or the database is away.

use serde::{Deserialize, Serialize};

use crate::model::{AgentSpec, SipTrunkSpec};

/// Everything one edge routes calls with, at one configuration version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeConfigSnapshot {
    pub version: u64,
    pub region: String,
    pub numbers: Vec<RoutedNumber>,
    pub agents: Vec<AgentConfig>,
    /// SIP trunks this region may call out through, of every workspace it serves.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
}

/// A workspace's trunk as an edge uses it (credentials included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub id: String,
    pub workspace_id: String,
    pub spec: SipTrunkSpec,
}

/// A dialable number and its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedNumber {
    pub number: String,
    pub workspace_id: String,
    pub target: CallTarget,
}

/// What answers a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallTarget {
    Agent { agent_id: String },
}

/// An agent as an edge runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub id: String,
    pub workspace_id: String,
    pub spec: AgentSpec,
}

/// A routing decision: the number dialled and the agent that answers.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub number: &'a RoutedNumber,
    pub agent: &'a AgentConfig,
}

impl EdgeConfigSnapshot {
    /// The workspace's trunks usable from this region, lowest `priority` first.
    pub fn providers_for(&self, workspace_id: &str) -> Vec<&ProviderConfig> {
        let mut trunks: Vec<&ProviderConfig> = self
            .providers
            .iter()
            .filter(|p| p.workspace_id == workspace_id)
            .filter(|p| {
                p.spec.regions.is_empty() || p.spec.regions.iter().any(|r| r == &self.region)
            })
            .collect();
        trunks.sort_by_key(|p| p.spec.priority);
        trunks
    }

    /// Where a call to `dialled` goes, if anywhere. A leading `+` is optional on either side.
    pub fn route(&self, dialled: &str) -> Option<Route<'_>> {
        let wanted = dialled.trim_start_matches('+');
        let number = self
            .numbers
            .iter()
            .find(|n| n.number.trim_start_matches('+') == wanted)?;
        let CallTarget::Agent { agent_id } = &number.target;
        let agent = self.agents.iter().find(|a| &a.id == agent_id)?;
        Some(Route { number, agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialled_number_routes_to_its_agent_with_or_without_plus() {
        let spec: AgentSpec = serde_json::from_str(r#"{"name":"Desk"}"#).expect("agent");
        let snap = EdgeConfigSnapshot {
            version: 3,
            region: "local".into(),
            numbers: vec![RoutedNumber {
                number: "+15550001".into(),
                workspace_id: "w".into(),
                target: CallTarget::Agent {
                    agent_id: "a".into(),
                },
            }],
            agents: vec![AgentConfig {
                id: "a".into(),
                workspace_id: "w".into(),
                spec,
            }],
            providers: Vec::new(),
        };
        assert_eq!(
            snap.route("15550001").map(|r| r.agent.id.as_str()),
            Some("a")
        );
        assert_eq!(
            snap.route("+15550001").map(|r| r.agent.id.as_str()),
            Some("a")
        );
        assert!(snap.route("+15550002").is_none());
    }
}
