//! The task that answers other edges' requests to this edge's mesh: a `Dial` is put to the
//! gate ([`LegHost`]: the control plane's grant, the asking peer as its certificate names it,
//! the workspace, the rates) and
//! either carried out as a hosted leg (`call/hosted.rs`) or answered with a
//! `Hangup { Refused }` and counted in `freya_edge_mesh_dials_refused_total{reason}`; a `Join`
//! for no leg here is answered with a hang-up, as before. Grants arrive from the control link.

use std::net::SocketAddr;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::host::{DialContext, DialGrant, DialRequest, HostSettings, LegHost};
use super::{ControlMessage, HangupCause, LegKey, Mesh, MeshAccess};
use crate::call::hosted::{self, HostedSpec};
use crate::call::task::CallServices;
use crate::sip::transport::SipCommand;

/// Refused dial requests by `reason`.
pub(crate) type DialRefusedCounter = Family<Vec<(String, String)>, Counter>;

/// What the task needs besides its channels.
pub(crate) struct Hosting {
    pub access: MeshAccess,
    pub settings: HostSettings,
    pub services: CallServices,
    pub sip: mpsc::Sender<SipCommand>,
    pub refused: DialRefusedCounter,
}

impl Hosting {
    /// Serves requests and grants until both channels close.
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<(SocketAddr, ControlMessage)>,
        mut grants: mpsc::Receiver<DialGrant>,
    ) {
        let mut gate = LegHost::new(self.settings);
        let mut legs: JoinSet<LegKey> = JoinSet::new();
        loop {
            tokio::select! {
                grant = grants.recv() => match grant {
                    Some(grant) => gate.handle_grant(Instant::now(), grant),
                    None => return,
                },
                request = requests.recv() => match request {
                    Some((from, message)) => self.on_request(&mut gate, &mut legs, from, message),
                    None => return,
                },
                Some(done) = legs.join_next(), if !legs.is_empty() => {
                    if let Ok(key) = done {
                        gate.handle_ended(key);
                    }
                }
            }
        }
    }

    fn on_request(
        &self,
        gate: &mut LegHost,
        legs: &mut JoinSet<LegKey>,
        from: SocketAddr,
        message: ControlMessage,
    ) {
        let ControlMessage::Dial {
            key,
            workspace,
            to,
            from_edge,
        } = message
        else {
            tracing::info!(peer = %from, key = ?message.key(), "mesh join for no call here: refused");
            return self.answer(from, message.key(), HangupCause::Unavailable);
        };
        let request = DialRequest {
            key,
            workspace,
            to,
            from_edge,
        };
        let snapshot = self.services.state.snapshot();
        let serves = |ws: &str| !snapshot.providers_for(ws).is_empty();
        // Who the connection's certificate says the peer is: bound to the edge the request
        // names, whatever gossip says of addresses.
        let certified = self.access.mesh.peer_name(from).map(|name| name.edge_id);
        let context = DialContext {
            from,
            certified_as: certified.as_deref(),
            home_addr: self.access.peer_addr(&request.from_edge),
            serves: &serves,
        };
        if let Err(refusal) = gate.handle_dial(Instant::now(), &request, &context) {
            let certificate = certified.as_deref().unwrap_or("none");
            tracing::warn!(peer = %from, claims = %request.from_edge, certificate, call = %key.call, leg = key.leg, %refusal, "mesh dial refused");
            let reason = vec![("reason".to_owned(), refusal.label().to_owned())];
            self.refused.get_or_create(&reason).inc();
            return self.answer(from, key, HangupCause::Refused);
        }
        tracing::info!(peer = %from, call = %key.call, leg = key.leg, to = %freya_shared::redact::MaskedNumber(&request.to), "dialling a leg for another edge");
        let spec = HostedSpec {
            key,
            home: from,
            to: request.to,
            workspace: request.workspace,
            edge_id: self.access.edge_id.to_string(),
            mesh: self.access.mesh.clone(),
            sip: self.sip.clone(),
            services: self.services.clone(),
        };
        legs.spawn(hosted::run(spec));
    }

    /// Answers a request with a hang-up, without holding up the next request.
    fn answer(&self, to: SocketAddr, key: LegKey, cause: HangupCause) {
        let mesh: Mesh = self.access.mesh.clone();
        tokio::spawn(async move {
            let hangup = ControlMessage::Hangup { key, cause };
            if let Err(error) = mesh.send_control(to, &hangup).await {
                tracing::debug!(peer = %to, %error, "could not answer a mesh request");
            }
        });
    }
}
