//! The command stream: the control plane asks this edge to drain, hang up or place a call.

use tokio::sync::mpsc;

use super::{log_failure, LinkContext};
use crate::state::EdgeState;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::CommandsRequest;
use freya_shared::model::{CallEvent, CallEventKind};

pub(crate) async fn run(link: LinkContext, state: EdgeState, events: mpsc::Sender<CallEvent>) {
    let mut backoff = link.backoff();
    loop {
        let request = CommandsRequest {
            edge_id: link.edge_id.to_string(),
        };
        match link.client.clone().commands(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let next = tokio::select! {
                        next = stream.message() => next,
                        _ = link.shutdown.cancelled() => return,
                    };
                    match next {
                        Ok(Some(command)) => {
                            backoff.reset();
                            handle(&state, &events, command.command).await;
                        }
                        Ok(None) => break,
                        Err(status) => {
                            log_failure("receiving commands", &status);
                            break;
                        }
                    }
                }
            }
            Err(status) => log_failure("opening the command stream", &status),
        }
        if !link.pause(backoff.next_delay()).await {
            return;
        }
    }
}

async fn handle(state: &EdgeState, events: &mpsc::Sender<CallEvent>, command: Option<Command>) {
    match command {
        Some(Command::Drain(drain)) => {
            tracing::info!(
                draining = drain.draining,
                "drain requested by the control plane"
            );
            state.set_draining(drain.draining);
        }
        Some(Command::HangupCall(hangup)) => {
            tracing::info!(call = %hangup.call_id, "hang-up requested for a call this edge does not carry");
        }
        Some(Command::PlaceCall(place)) => {
            // Outbound SIP calling is not part of this edge yet: say so in the call record
            // rather than leaving the request unanswered.
            tracing::warn!(call = %place.call_id, to = %place.to, "outbound call requested but outbound calling is not available on this edge");
            let event = CallEvent::new(
                place.call_id,
                place.workspace_id,
                CallEventKind::Failed,
                serde_json::json!({
                    "direction": "outbound",
                    "to": place.to,
                    "reason": "outbound calling is not available on this edge yet",
                }),
            );
            let _ = events.send(event).await;
        }
        None => tracing::warn!("ignoring an empty command"),
    }
}
