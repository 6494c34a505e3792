//! The plainest call world, for tests that drive an edge with sipp or by hand and read what the
//! control plane recorded: a control plane, a workspace whose agent "Desk" answers number
//! `demo`, and an edge that rings a set time before it answers.

use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::model::AgentSpec;

use super::{control_plane, demo_edge, demo_workspace, Backend, TestDb};

/// A control plane on its own database, the desk's workspace and an edge routing `demo` to it.
pub struct RingingDesk {
    pub db: TestDb,
    pub control: ControlPlane,
    pub edge: Edge,
    pub scope: WorkspaceScope,
    /// The desk's agent.
    pub agent_id: String,
    _dir: tempfile::TempDir,
}

/// A [`RingingDesk`] on `backend` in workspace `workspace`, its edge ringing `ring_ms` before it
/// answers a call.
pub async fn ringing_desk(backend: Backend, workspace: &str, ring_ms: u32) -> RingingDesk {
    let (db, control) = control_plane(backend).await;
    let agent: AgentSpec =
        serde_json::from_value(serde_json::json!({"name": "Desk"})).expect("agent");
    let (scope, agent) = demo_workspace(&control, workspace, &agent).await;
    let (edge, dir) = demo_edge(&control, |c| c.sip.ring_ms = ring_ms).await;
    RingingDesk {
        db,
        control,
        edge,
        scope,
        agent_id: agent.id,
        _dir: dir,
    }
}

impl RingingDesk {
    /// Stops the edge and the control plane and drops the database.
    pub async fn stop(self) {
        self.edge.stop().await;
        self.control.stop().await;
        self.db.cleanup().await;
    }
}
