//! Placing a claimed outbound call once more, on another edge (`store/call_retries.rs` claims
//! it, once across replicas, and the call starts waiting: `store/call_placements.rs`), and
//! handing a new call to its edge when the request's replica holds no stream of it
//! (`relay.rs`: it waits the same way, its edge already chosen). Every
//! control-plane process looks for waiting calls (every [`PASS_PERIOD`], and at once when it
//! claims one), so the retry reaches an edge connected to any replica, not only the claimer's:
//!
//! - the edge is chosen as `POST /v1/calls` chooses (`api/edge_choice.rs`: online with room, the
//!   number's home region first, then its further regions), never one that failed the call, by
//!   whichever replica leases the call first; the retry is recorded as `call.retried`
//!   (`from_edge`, `to_edge`, `reason`) and the call moved to that edge before any command goes
//!   out, so the record reads in order even when the second edge answers at once;
//! - the command is sent by the replica holding that edge's command stream, under the lease;
//!   a replica without it gives the lease back at once. A replica killed holding the lease
//!   leaves the call to another after [`PLACEMENT_LEASE_MS`];
//! - with no edge to take it, or none of the replicas reaching the chosen edge within
//!   [`HANDOVER_GIVE_UP_MS`], the call fails after all, with the first edge's reason.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{RetryClaim, Store, StoreError, WaitingPlacement};
use freya_proto::v1::{edge_command::Command, EdgeCommand, PlaceCall};
use freya_shared::ids::{new_id, now_ms};
use freya_shared::model::call_payloads::{CallFailed, FailureDetail};
use freya_shared::model::call_placement::CallRetried;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

use super::CommandHub;

/// How long a process holds a waiting call while handing it over; a killed holder's calls go
/// to another replica after this.
pub(crate) const PLACEMENT_LEASE_MS: i64 = 5_000;

/// How often each process looks for waiting calls it can hand over.
pub(crate) const PASS_PERIOD: Duration = Duration::from_millis(250);

/// How long a call waits for a replica with its chosen edge's command stream before it fails.
pub(crate) const HANDOVER_GIVE_UP_MS: i64 = 30_000;

/// Most waiting calls looked at in one pass.
const BATCH: i64 = 32;

/// What a retry needs: the store, the command streams of edges connected here, and which
/// edges count as online.
#[derive(Clone)]
pub(crate) struct CallRetrier {
    pub store: Store,
    pub commands: CommandHub,
    /// `edges.offline_after_ms`.
    pub offline_after_ms: i64,
}

impl CallRetrier {
    /// Hands over the calls this process just claimed (and any other waiting one) now, in a
    /// task of its own (the event stream acknowledges on) rather than at the next pass.
    pub(crate) fn place_again_later(&self, claims: Vec<RetryClaim>) {
        if claims.is_empty() {
            return;
        }
        let retrier = self.clone();
        tokio::spawn(async move {
            if let Err(e) = retrier.pass(now_ms()).await {
                tracing::warn!(error = %e, "could not place claimed calls again now; the next pass will");
            }
        });
    }

    /// Looks for waiting calls every [`PASS_PERIOD`] until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(PASS_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticks.tick() => {
                    if let Err(e) = self.pass(now_ms()).await {
                        tracing::warn!(error = %e, "could not look for calls waiting for an edge; trying again");
                    }
                }
            }
        }
    }

    /// One look at the waiting calls whose lease is free at `now`.
    pub(crate) async fn pass(&self, now: i64) -> Result<(), StoreError> {
        // This pass, as a lease holder: its leases are its own.
        let holder = new_id();
        for waiting in self.store.waiting_placements(now, BATCH).await? {
            if let Err(e) = self.hand_over(&waiting, &holder, now).await {
                tracing::warn!(call = %waiting.call_id, error = %e, "could not place the call again; it stays waiting");
            }
        }
        Ok(())
    }

    /// Chooses the call's edge if none is, and sends it the command if its stream is here.
    async fn hand_over(
        &self,
        waiting: &WaitingPlacement,
        holder: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let chosen = waiting.edge_chosen();
        let waited_too_long = now.saturating_sub(waiting.since_ms) >= HANDOVER_GIVE_UP_MS;
        if chosen && !self.commands.is_connected(&waiting.edge_id) && !waited_too_long {
            // The replica holding the edge's command stream hands it over.
            return Ok(());
        }
        let (call_id, store) = (&waiting.call_id, &self.store);
        if !store
            .lease_placement(call_id, holder, now, PLACEMENT_LEASE_MS)
            .await?
        {
            return Ok(());
        }
        let edge_id = if chosen {
            if !self.commands.is_connected(&waiting.edge_id) {
                tracing::warn!(call = %call_id, edge = %waiting.edge_id, "no control-plane replica reached the edge chosen for the call; it fails");
                // A first placement (`relay.rs`) has no failed attempt before this one.
                let detail = if waiting.attempts.is_empty() {
                    "no control-plane replica reached the edge"
                } else {
                    "no control-plane replica reached the other edge"
                };
                return self.fail(waiting, holder, detail).await;
            }
            if store.edge_has_the_call(call_id, &waiting.edge_id).await? {
                // A replica sent it, then died before saying so.
                store.placement_handed_over(call_id, holder).await?;
                return Ok(());
            }
            waiting.edge_id.clone()
        } else {
            match self.choose(waiting).await? {
                Some(edge_id) => edge_id,
                None => {
                    tracing::warn!(call = %call_id, from = %waiting.first_edge(), "no other edge can place the call; it fails");
                    return self
                        .fail(waiting, holder, "no other edge could place the call")
                        .await;
                }
            }
        };
        if !self.commands.is_connected(&edge_id) {
            // Its stream is on another replica: that one takes the lease at its next pass.
            store.release_placement(call_id, holder).await?;
            return Ok(());
        }
        let command = EdgeCommand {
            id: new_id(),
            command: Some(Command::PlaceCall(PlaceCall {
                call_id: call_id.clone(),
                workspace_id: waiting.workspace_id.clone(),
                from: waiting.from_number.clone(),
                to: waiting.to_number.clone(),
                agent_id: waiting.agent_id.clone(),
            })),
        };
        match self.commands.send(&edge_id, command).await {
            Ok(()) => {
                store.placement_handed_over(call_id, holder).await?;
                tracing::info!(call = %call_id, from = %waiting.first_edge(), to = %edge_id, reason = %waiting.first_reason(), "outbound call placed again on another edge");
            }
            Err(e) => {
                tracing::warn!(edge = %edge_id, error = %e, "edge cannot take the retried call now; it stays waiting");
                store.release_placement(call_id, holder).await?;
            }
        }
        Ok(())
    }

    /// The edge the call goes to: the first by preference that has not failed it, recorded
    /// (`call.retried`, then the call moved to it). `None`: no edge can take it.
    async fn choose(&self, waiting: &WaitingPlacement) -> Result<Option<String>, StoreError> {
        let scope = waiting.scope();
        let numbers = self.store.numbers(&scope).await?;
        let number = numbers
            .iter()
            .find(|n| n.spec.number == waiting.from_number);
        let reachable = number
            .map(|n| n.spec.reachable_regions())
            .unwrap_or_default();
        let edges = crate::api::edge_choice::edges_in_preference(
            self.store.edges(self.offline_after_ms).await?,
            &reachable,
        );
        let Some(edge) = edges
            .into_iter()
            .find(|e| !waiting.attempts.iter().any(|a| a.edge_id == e.id))
        else {
            return Ok(None);
        };
        let retried = CallRetried {
            from_edge: waiting.first_edge().to_owned(),
            to_edge: edge.id.clone(),
            reason: waiting.first_reason().to_owned(),
            extra: Default::default(),
        };
        let mut event = CallEvent::new(
            waiting.call_id.clone(),
            waiting.workspace_id.clone(),
            CallEventData::Retried(retried),
        );
        // One record however many times a killed chooser's successor chooses again.
        event.id = format!("{}.retried", waiting.call_id);
        self.store.record_call_event(&edge.id, &event).await?;
        self.store
            .move_call_to_edge(&scope, &waiting.call_id, &edge.id)
            .await?;
        Ok(Some(edge.id))
    }

    /// The call fails after all, on its first edge, with that edge's reason.
    async fn fail(
        &self,
        waiting: &WaitingPlacement,
        holder: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let first_edge = waiting.first_edge();
        self.store
            .move_call_to_edge(&waiting.scope(), &waiting.call_id, first_edge)
            .await?;
        let failed = CallFailed {
            direction: Some("outbound".to_owned()),
            to: Some(waiting.to_number.clone()),
            detail: Some(FailureDetail::Text(detail.to_owned())),
            // Not `edge`: this failure is the end, never claimed again.
            ..CallFailed::because(FailReason::parse(waiting.first_reason()))
                .placed_by(Placement::Request)
        };
        let mut event = CallEvent::new(
            waiting.call_id.clone(),
            waiting.workspace_id.clone(),
            CallEventData::Failed(failed),
        );
        event.id = format!("{}.not_retried", waiting.call_id);
        self.store.record_call_event(first_edge, &event).await?;
        self.store
            .placement_handed_over(&waiting.call_id, holder)
            .await?;
        Ok(())
    }
}
