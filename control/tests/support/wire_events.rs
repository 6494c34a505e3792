//! Call events as an edge sends them over gRPC: a link of the shared secret's kind, events made
//! from the shared model, and a `PublishEvents` stream waited on until every event is
//! acknowledged. For tests of what the control plane keeps of what edges (of any release) send.

use std::time::Duration;

use freya_control::server::ControlPlane;
use freya_edge::control_link::ControlClient;
use freya_proto::v1::CallEvent as WireEvent;
use freya_shared::model::CallEvent;

use super::SECRET;

/// A link to `control` as edge `edge`, with the tests' shared secret.
pub fn link(control: &ControlPlane, edge: &str) -> ControlClient {
    freya_edge::control_link::client(
        &format!("http://{}", control.grpc_addr),
        SECRET,
        edge,
        Duration::from_secs(5),
    )
    .expect("client")
}

/// `event` as it travels on the wire.
pub fn wire(event: &CallEvent) -> WireEvent {
    WireEvent {
        id: event.id.clone(),
        call_id: event.call_id.clone(),
        workspace_id: event.workspace_id.clone(),
        kind: event.kind.clone(),
        at_ms: event.at_ms,
        payload_json: event.payload.to_string(),
        schema: event.schema,
    }
}

/// Sends `events` on one `PublishEvents` stream of `link` and waits (30 s at most) until each
/// is acknowledged, every ack naming an event.
pub async fn publish_all(link: &mut ControlClient, events: Vec<WireEvent>) {
    let expected = events.len();
    let mut acks = link
        .publish_events(futures::stream::iter(events))
        .await
        .expect("the event stream opens")
        .into_inner();
    let mut acked = 0;
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        while acked < expected {
            let ack = acks.message().await.expect("acks").expect("an ack");
            assert!(!ack.id.is_empty());
            acked += 1;
        }
    });
    wait.await.expect("every event acknowledged in time");
    assert_eq!(acked, expected);
}
