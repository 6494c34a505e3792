//! `/v1/agents`: create, list, read and patch the agents of the caller's workspace. The agent's
//! secrets (the `api_key` of its `stt`/`llm`/`tts` providers, its `tool_secret`) read back as
//! `********`; a PATCH that leaves them out, or sends the mask back, keeps the stored ones —
//! except that a PATCH changing where a provider's stored `api_key` is sent (its `base_url` or
//! `provider`) must give that key again, or a caller who can edit the agent but never saw the
//! key could have it sent to a host of their choosing.

use serde::Serialize;

use super::auth::Caller;
use super::crud::{checked, crud_routes, merged, store_writes, Resource};
use super::openapi::AgentSpecDoc;
use super::problem::Problem;
use super::{AppState, List};
use crate::store::Agent;
use freya_shared::ids::rfc3339;
use freya_shared::model::{AgentSpec, FieldError};

/// An agent as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AgentView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::AgentSpecDoc)]
    spec: AgentSpec,
    created_at: String,
    updated_at: String,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id,
            workspace_id: a.workspace_id,
            spec: masked(a.spec),
            created_at: rfc3339(a.created_at_ms),
            updated_at: rfc3339(a.updated_at_ms),
        }
    }
}

/// What a stored secret reads as.
const SECRET_MASK: &str = "********";

/// `spec` with its secrets replaced by the mask.
fn masked(mut spec: AgentSpec) -> AgentSpec {
    for provider in [
        &mut spec.stt,
        &mut spec.llm,
        &mut spec.llm_fallback,
        &mut spec.tts,
    ]
    .into_iter()
    .flatten()
    {
        if provider.api_key.is_some() {
            provider.api_key = Some(SECRET_MASK.into());
        }
    }
    if spec.tool_secret.is_some() {
        spec.tool_secret = Some(SECRET_MASK.into());
    }
    spec
}

/// `spec` (patched) with every secret that was sent back as the mask restored from `current`.
fn unmasked(mut spec: AgentSpec, current: &AgentSpec) -> AgentSpec {
    for (patched, stored) in [
        (&mut spec.stt, &current.stt),
        (&mut spec.llm, &current.llm),
        (&mut spec.llm_fallback, &current.llm_fallback),
        (&mut spec.tts, &current.tts),
    ] {
        if let Some(p) = patched {
            if p.api_key.as_deref() == Some(SECRET_MASK) {
                p.api_key = stored.as_ref().and_then(|s| s.api_key.clone());
            }
        }
    }
    if spec.tool_secret.as_deref() == Some(SECRET_MASK) {
        spec.tool_secret = current.tool_secret.clone();
    }
    spec
}

/// One error for each provider section of `spec` (patched and unmasked) that would send the key
/// stored in `current` somewhere else — another `base_url` or `provider` — without `patch`
/// giving the key again.
fn keys_sent_elsewhere(
    patch: &serde_json::Value,
    spec: &AgentSpec,
    current: &AgentSpec,
) -> Vec<FieldError> {
    let sections = [
        ("stt", &spec.stt, &current.stt),
        ("llm", &spec.llm, &current.llm),
        ("llm_fallback", &spec.llm_fallback, &current.llm_fallback),
        ("tts", &spec.tts, &current.tts),
    ];
    let mut errors = Vec::new();
    for (name, patched, stored) in sections {
        let (Some(patched), Some(stored)) = (patched, stored) else {
            continue;
        };
        let given = patch[name]["api_key"]
            .as_str()
            .is_some_and(|key| key != SECRET_MASK);
        if given || stored.api_key.is_none() || patched.api_key != stored.api_key {
            continue;
        }
        let moved = if patched.base_url != stored.base_url {
            "base_url"
        } else if patched.provider != stored.provider {
            "provider"
        } else {
            continue;
        };
        errors.push(FieldError::new(
            format!("{name}.api_key"),
            format!("must be given again when `{name}.{moved}` changes"),
        ));
    }
    errors
}

/// Agents as a [`Resource`]: masked secrets on the way out, restored from the stored agent
/// on a patch that sends the mask back.
pub(super) struct Agents;

impl Resource for Agents {
    type Spec = AgentSpec;
    type Stored = Agent;
    type View = AgentView;
    type Change = AgentSpec;

    async fn validated(_: &AppState, _: &Caller, spec: AgentSpec) -> Result<AgentSpec, Problem> {
        let errors = spec.validate();
        checked(spec, errors)
    }

    async fn patched(
        state: &AppState,
        caller: &Caller,
        current: Agent,
        patch: serde_json::Value,
    ) -> Result<AgentSpec, Problem> {
        let moved_check = patch.clone();
        let spec = unmasked(merged(&current.spec, patch)?, &current.spec);
        let moved = keys_sent_elsewhere(&moved_check, &spec, &current.spec);
        if !moved.is_empty() {
            return Err(Problem::invalid(moved));
        }
        Self::validated(state, caller, spec).await
    }

    store_writes!(AgentSpec => Agent, create_agent, update_agent, delete_agent);
}

crud_routes! {
    resource: Agents,
    view: AgentView,
    spec_doc: AgentSpecDoc,
    path: "/v1/agents",
    item_path: "/v1/agents/{id}",
    tag: "agents",
    create: "Create a agent (editor)",
    list: "The workspace's agents",
    listed: "A page of agents",
    get: "One agent",
    got: "The agent",
    id: "The agent's id",
    patch: "Change a agent with a JSON merge patch (editor)",
    patch_body: "Any subset of the fields (RFC 7396 merge patch; null removes an optional field)",
    delete: "Delete a agent (editor)",
}
