//! Placing a claimed outbound call once more, on another edge (`store/call_retries.rs` claims
//! it, once across replicas). The edges are chosen as `POST /v1/calls` chooses them
//! (`api/edge_choice.rs`: online with room, the number's home region first, then its further
//! regions), never the edge that failed it, and only among those with a command stream to this
//! process. The retry is recorded as `call.retried` (`from_edge`, `to_edge`, `reason`) before
//! the command goes out, so the record reads in order even when the second edge answers at
//! once. With no edge to take it, the call fails after all, with the first edge's reason.

use crate::store::{RetryClaim, Store, StoreError, WorkspaceScope};
use freya_proto::v1::{edge_command::Command, EdgeCommand, PlaceCall};
use freya_shared::ids::new_id;
use freya_shared::model::call_payloads::{CallFailed, FailureDetail};
use freya_shared::model::call_placement::CallRetried;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

use super::CommandHub;

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
    /// Places each claimed call again, in a task of its own (the event stream acknowledges on).
    pub(crate) fn place_again_later(&self, claims: Vec<RetryClaim>) {
        for claim in claims {
            let retrier = self.clone();
            tokio::spawn(async move {
                if let Err(e) = retrier.place_again(&claim).await {
                    tracing::warn!(call = %claim.call_id, error = %e, "could not place the call again; it stays queued");
                }
            });
        }
    }

    /// Hands the call to the first other edge that takes the command; else fails it.
    pub(crate) async fn place_again(&self, claim: &RetryClaim) -> Result<(), StoreError> {
        let scope = WorkspaceScope {
            workspace_id: claim.workspace_id.clone(),
        };
        let numbers = self.store.numbers(&scope).await?;
        let number = numbers.iter().find(|n| n.spec.number == claim.from_number);
        let reachable = number
            .map(|n| n.spec.reachable_regions())
            .unwrap_or_default();
        let edges = crate::api::edge_choice::edges_in_preference(
            self.store.edges(self.offline_after_ms).await?,
            &reachable,
        );
        for edge in edges {
            if edge.id == claim.from_edge || !self.commands.is_connected(&edge.id) {
                continue;
            }
            self.store
                .move_call_to_edge(&scope, &claim.call_id, &edge.id)
                .await?;
            let retried = CallRetried {
                from_edge: claim.from_edge.clone(),
                to_edge: edge.id.clone(),
                reason: claim.reason.clone(),
                extra: Default::default(),
            };
            let event = CallEvent::new(
                claim.call_id.clone(),
                claim.workspace_id.clone(),
                CallEventData::Retried(retried),
            );
            self.store.record_call_event(&edge.id, &event).await?;
            let command = EdgeCommand {
                id: new_id(),
                command: Some(Command::PlaceCall(PlaceCall {
                    call_id: claim.call_id.clone(),
                    workspace_id: claim.workspace_id.clone(),
                    from: claim.from_number.clone(),
                    to: claim.to_number.clone(),
                    agent_id: claim.agent_id.clone(),
                })),
            };
            match self.commands.send(&edge.id, command).await {
                Ok(()) => {
                    tracing::info!(call = %claim.call_id, from = %claim.from_edge, to = %edge.id, reason = %claim.reason, "outbound call placed again on another edge");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(edge = %edge.id, error = %e, "edge cannot take the retried call; trying another")
                }
            }
        }
        tracing::warn!(call = %claim.call_id, from = %claim.from_edge, "no other edge can place the call; it fails");
        self.store
            .move_call_to_edge(&scope, &claim.call_id, &claim.from_edge)
            .await?;
        let failed = CallFailed {
            direction: Some("outbound".to_owned()),
            to: Some(claim.to_number.clone()),
            detail: Some(FailureDetail::Text(
                "no other edge could place the call".to_owned(),
            )),
            // Not `edge`: this failure is the end, never claimed again.
            ..CallFailed::because(FailReason::parse(&claim.reason)).placed_by(Placement::Request)
        };
        let mut event = CallEvent::new(
            claim.call_id.clone(),
            claim.workspace_id.clone(),
            CallEventData::Failed(failed),
        );
        event.id = format!("{}.not_retried", claim.call_id);
        self.store
            .record_call_event(&claim.from_edge, &event)
            .await?;
        Ok(())
    }
}
