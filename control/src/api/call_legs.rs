//! A live call's legs: dialling another party into it (`POST /v1/calls/{id}/legs`), bridging
//! legs with the agent muted, listening or whispering (`POST /v1/calls/{id}/bridge`, and
//! `DELETE` of it to return the call to the agent), and hanging a leg up
//! (`DELETE /v1/calls/{id}/legs/{leg}`). Each is checked here against what the call's stored
//! events say of its legs, then carried to the call's edge as a `LegCommand`; the edge's core
//! checks again and records what it did (`call.leg_added`, `call.bridged`, ...).
//!
//! Who may be dialled: the call's agent's `transfer_destinations` for an editor (the same
//! destinations its model may transfer to); any valid number or SIP user for an admin.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::calls::plausible_call_id;
use super::json::strict_from_value;
use super::problem::Problem;
use super::AppState;
use crate::store::{CallRecord, Role};
use freya_proto::v1::leg_command::Action;
use freya_proto::v1::{
    edge_command::Command, BridgeLegs, DialLeg, EdgeCommand, HangupLeg, HostLeg, LegCommand,
    Unbridge,
};
use freya_shared::ids::new_id;
use freya_shared::model::{CallEventData, FieldError};

/// `POST /v1/calls/{id}/legs`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct DialLegRequest {
    /// The number or SIP user to dial.
    to: String,
    /// The edge (its id) that dials the party with its own SIP trunks, when not the call's
    /// own: the call's edge asks it over the QUIC mesh and the leg's audio crosses the mesh.
    /// It must be online and serve the call's workspace. Absent: the control plane chooses —
    /// an online edge with room in the region of the workspace's number `to` when it is homed
    /// elsewhere, or of the workspace's trunks when none serves the call's region; else the
    /// call's own edge. The answer's `edge` says which.
    #[serde(default)]
    edge: Option<String>,
    /// A warm transfer: said to the party alone once it answers; then caller and party are
    /// bridged and the agent leaves (1-500 characters).
    #[serde(default)]
    whisper: Option<String>,
}

/// The leg being dialled.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LegView {
    /// The leg's number in the call (0 is the call's first party).
    leg: u8,
    to: String,
    /// The edge that dials and carries it.
    edge: String,
    /// `dialling`: its news comes as `call.leg_answered` or `call.leg_ended`.
    status: &'static str,
}

/// `POST /v1/calls/{id}/bridge`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct BridgeRequest {
    /// The legs that hear each other (at least two, each once).
    legs: Vec<u32>,
    /// `muted` (the agent leaves), `listening` (hears, says nothing) or `whisper` (speaks to
    /// `whisper_to` only).
    agent: String,
    #[serde(default)]
    whisper_to: Option<u32>,
}

/// What the call's events say of its legs.
#[derive(Default)]
struct Legs {
    added: Vec<u8>,
    answered: Vec<u8>,
    ended: Vec<u8>,
}

impl Legs {
    fn exists(&self, leg: u32) -> bool {
        leg == 0 || self.added.iter().any(|l| u32::from(*l) == leg)
    }

    fn is_up(&self, leg: u32) -> bool {
        let has = |list: &[u8]| list.iter().any(|l| u32::from(*l) == leg);
        leg == 0 || (has(&self.answered) && !has(&self.ended))
    }
}

async fn live_call(state: &AppState, caller: &Caller, id: &str) -> Result<CallRecord, Problem> {
    if !plausible_call_id(id) {
        return Err(Problem::not_found());
    }
    let call = state.store.call(&caller.scope, id).await?;
    if call.ended_at_ms.is_some() {
        return Err(Problem::conflict("the call has already ended"));
    }
    Ok(call)
}

async fn legs_of(state: &AppState, caller: &Caller, id: &str) -> Result<Legs, Problem> {
    let mut legs = Legs::default();
    for event in state.store.call_events(&caller.scope, id).await? {
        match CallEventData::parse(&event.kind, &event.payload) {
            CallEventData::LegAdded(a) => legs.added.push(a.leg),
            CallEventData::LegAnswered(a) => legs.answered.push(a.leg),
            CallEventData::LegEnded(e) => legs.ended.push(e.leg),
            _ => {}
        }
    }
    Ok(legs)
}

async fn send(state: &AppState, call: &CallRecord, action: Action) -> Result<(), Problem> {
    let edge_id = call.edge_id.clone().unwrap_or_default();
    send_to(state, &edge_id, call, action).await
}

async fn send_to(
    state: &AppState,
    edge_id: &str,
    call: &CallRecord,
    action: Action,
) -> Result<(), Problem> {
    let command = EdgeCommand {
        id: new_id(),
        command: Some(Command::Legs(LegCommand {
            call_id: call.id.clone(),
            action: Some(action),
        })),
    };
    state
        .relay
        .deliver(edge_id, command, Some(&call.id))
        .await?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/calls/{id}/legs",
    tag = "calls",
    summary = "Dial another party into a live call (editor: the agent's transfer destinations; admin: any number)",
    params(("id" = String, Path, description = "The call's id")),
    request_body = DialLegRequest,
    responses((status = 202, description = "The edge was told to dial", body = LegView))
)]
pub(super) async fn dial(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<LegView>), Problem> {
    let call = live_call(&state, &caller, &id).await?;
    let request: DialLegRequest = strict_from_value(super::json::parse_body(&headers, &body)?)?;
    let to = request.to.trim().to_owned();
    if let Some(problem) = freya_shared::model::sip_user::sip_user_problem(&to) {
        return Err(Problem::invalid(vec![FieldError::new("to", problem)]));
    }
    if caller.role < Role::Admin {
        let allowed = match call.agent_id.as_deref() {
            Some(agent) => state.store.agent(&caller.scope, agent).await.ok(),
            None => None,
        }
        .is_some_and(|agent| {
            agent
                .spec
                .transfer_destinations
                .iter()
                .any(|d| d.trim() == to)
        });
        if !allowed {
            return Err(Problem::invalid(vec![FieldError::new(
                "to",
                "not one of the agent's transfer_destinations (an admin may dial any number)",
            )]));
        }
    }
    let legs = legs_of(&state, &caller, &id).await?;
    let next = legs
        .added
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let home = call.edge_id.clone().unwrap_or_default();
    let whisper = request.whisper.map(|w| w.trim().to_owned());
    if whisper
        .as_deref()
        .is_some_and(|w| w.is_empty() || w.chars().count() > 500)
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "whisper",
            "must be 1-500 characters",
        )]));
    }
    let remote = match request.edge {
        Some(edge) => Some(edge.trim().to_owned()),
        None => leg_edge(&state, &caller, &call, &to).await?,
    }
    .filter(|e| *e != home);
    if let Some(edge) = &remote {
        check_remote_edge(&state, edge).await?;
        // The grant first: the other edge dials only what it was told to expect.
        let grant = Action::Host(HostLeg {
            leg: u32::from(next),
            to: to.clone(),
            workspace_id: caller.scope.workspace_id.clone(),
            home_edge: home.clone(),
        });
        send_to(&state, edge, &call, grant).await?;
    }
    let action = Action::Dial(DialLeg {
        leg: u32::from(next),
        to: to.clone(),
        edge: remote.clone().unwrap_or_default(),
        whisper,
    });
    send(&state, &call, action).await?;
    let view = LegView {
        leg: next,
        to,
        edge: remote.unwrap_or(home),
        status: "dialling",
    };
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The edge the control plane picks for a leg to `to` when the request names none
/// (`edge_choice::leg_regions`): `None` for the call's own.
async fn leg_edge(
    state: &AppState,
    caller: &Caller,
    call: &CallRecord,
    to: &str,
) -> Result<Option<String>, Problem> {
    let numbers: Vec<_> = state
        .store
        .numbers(&caller.scope)
        .await?
        .into_iter()
        .map(|n| n.spec)
        .collect();
    let (providers, _) = state
        .store
        .scoped_list::<crate::store::Provider>(&caller.scope, None, 500)
        .await?;
    let providers: Vec<_> = providers.into_iter().map(|p| p.spec).collect();
    let regions = super::edge_choice::leg_regions(call.region.as_deref(), to, &numbers, &providers);
    let home = call.edge_id.as_deref().unwrap_or_default();
    let edges = state.store.edges(state.offline_after_ms).await?;
    let chosen = super::edge_choice::leg_edge(edges, home, &regions);
    if let Some(edge) = &chosen {
        tracing::info!(call = %call.id, %edge, ?regions, "a leg dialled from another edge of its region");
    }
    Ok(chosen)
}

/// A leg's other edge must be a known edge that is online now.
async fn check_remote_edge(state: &AppState, edge: &str) -> Result<(), Problem> {
    let edges = state.store.edges(state.offline_after_ms).await?;
    let online = edges
        .iter()
        .any(|e| e.id == edge && e.status == freya_shared::model::EdgeStatus::Online);
    if online {
        return Ok(());
    }
    Err(Problem::invalid(vec![FieldError::new(
        "edge",
        "not an online edge of this cluster",
    )]))
}

#[utoipa::path(
    delete,
    path = "/v1/calls/{id}/legs/{leg}",
    tag = "calls",
    summary = "Hang up one leg of a live call (editor); leg 0 ends the call",
    params(("id" = String, Path, description = "The call's id"), ("leg" = u32, Path, description = "The leg")),
    responses((status = 202, description = "The edge was told to hang the leg up"))
)]
pub(super) async fn hang_up(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, leg)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let call = live_call(&state, &caller, &id).await?;
    let leg: u32 = leg.parse().map_err(|_| Problem::not_found())?;
    let legs = legs_of(&state, &caller, &id).await?;
    if !legs.exists(leg) {
        return Err(Problem::not_found());
    }
    if legs.ended.iter().any(|l| u32::from(*l) == leg) {
        return Err(Problem::conflict("the leg has already ended"));
    }
    send(&state, &call, Action::Hangup(HangupLeg { leg })).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(
    post,
    path = "/v1/calls/{id}/bridge",
    tag = "calls",
    summary = "Bridge legs of a live call, the agent muted, listening or whispering (editor)",
    params(("id" = String, Path, description = "The call's id")),
    request_body = BridgeRequest,
    responses((status = 202, description = "The edge was told to bridge the legs"))
)]
pub(super) async fn bridge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let call = live_call(&state, &caller, &id).await?;
    let request: BridgeRequest = strict_from_value(super::json::parse_body(&headers, &body)?)?;
    let mut errors = Vec::new();
    if request.legs.len() < 2 {
        errors.push(FieldError::new("legs", "name at least two legs"));
    }
    if let Some(twice) = request
        .legs
        .iter()
        .enumerate()
        .find(|(i, l)| request.legs[..*i].contains(l))
    {
        errors.push(FieldError::new(
            "legs",
            format!(
                "leg {} is named twice: a leg cannot be bridged with itself",
                twice.1
            ),
        ));
    }
    match (request.agent.as_str(), request.whisper_to) {
        ("muted" | "listening", None) => {}
        ("muted" | "listening", Some(_)) => errors.push(FieldError::new(
            "whisper_to",
            "only with `agent: \"whisper\"`",
        )),
        ("whisper", Some(to)) if request.legs.contains(&to) => {}
        ("whisper", _) => errors.push(FieldError::new(
            "whisper_to",
            "a whisper names one of the bridged legs",
        )),
        _ => errors.push(FieldError::new(
            "agent",
            "must be `muted`, `listening` or `whisper`",
        )),
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let legs = legs_of(&state, &caller, &id).await?;
    if request.legs.iter().any(|l| !legs.exists(*l)) {
        return Err(Problem::not_found());
    }
    if let Some(dead) = request.legs.iter().find(|l| !legs.is_up(**l)) {
        return Err(Problem::conflict(format!("leg {dead} is not up")));
    }
    let action = Action::Bridge(BridgeLegs {
        legs: request.legs,
        agent: request.agent,
        whisper_to: request.whisper_to,
    });
    send(&state, &call, action).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(
    delete,
    path = "/v1/calls/{id}/bridge",
    tag = "calls",
    summary = "End a live call's bridge: the call is back with its agent (editor)",
    params(("id" = String, Path, description = "The call's id")),
    responses((status = 202, description = "The edge was told to end the bridge"))
)]
pub(super) async fn unbridge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let call = live_call(&state, &caller, &id).await?;
    send(&state, &call, Action::Unbridge(Unbridge {})).await?;
    Ok(StatusCode::ACCEPTED)
}
