//! Handing a call to a better peer of the cluster: before admission refuses an INVITE because
//! this edge is full or draining — or when the number's home region is elsewhere — the SIP task
//! asks [`crate::cluster::routing`] for the best live peer and answers `302 Moved Temporarily`
//! with that peer's SIP address as Contact. A redirect is counted
//! (`freya_edge_sip_invites_redirected_total{cause}`) and logged at info, and records no call:
//! the peer that answers records it, so the workspace never sees a failed call for it. An
//! INVITE that already carries our redirect mark is never redirected again (it falls through
//! to admission, which answers 503 with `Retry-After` when this edge cannot take it either),
//! and without a qualifying peer admission answers as before.
//!
//! An edge that is not ready (no configuration yet, or not joined to its cluster) redirects
//! nothing: its view of the peers may be empty or stale, so it answers 503 with `Retry-After`
//! and the carrier tries another edge. A draining edge that finds no peer to redirect to takes
//! the call itself while at least `drain.last_resort_seconds` of its drain deadline is left
//! (the call then runs under the same deadline as those it already carries), rather than fail
//! it: what a carrier wants from a node being restarted is the call carried, and 503 only when
//! nothing in the cluster can carry it ([`Redirects::intake`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::call::admission::Intake;
use crate::call::slots::NoSlot;
use crate::call::task::CallServices;
use crate::cluster::report::ClusterSnapshot;
use crate::cluster::routing::{choose_peer, redirect_contact, redirect_regions, RedirectCause};
use crate::metrics::RedirectCounter;
use crate::sip::endpoint::{IncomingCall, SipEndpoint};
use crate::state::EdgeState;

/// What the SIP task needs to redirect: the cluster's latest view and this edge's region.
pub(crate) struct Redirects {
    /// The members as the cluster task last published them; `None` without a cluster.
    pub cluster: Option<watch::Receiver<Arc<ClusterSnapshot>>>,
    /// This edge's region (`region`).
    pub region: Arc<str>,
    /// `freya_edge_sip_invites_redirected_total`.
    pub counter: RedirectCounter,
    /// `drain.last_resort_seconds`: how much of a drain's deadline must be left for a draining
    /// edge to take a call no peer can take.
    pub last_resort: Duration,
}

impl Redirects {
    /// Answers `call` with a 302 to a peer when it should go elsewhere and a peer can take it;
    /// true when it did (the call is then done here).
    pub(super) fn try_redirect(
        &self,
        endpoint: &mut SipEndpoint,
        services: &CallServices,
        call: &IncomingCall,
        room: Result<(), NoSlot>,
    ) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        if call.redirected || !services.state.is_ready() {
            return false;
        }
        let snapshot = services.state.snapshot();
        let Some(route) = snapshot.route(&call.dialled) else {
            return false;
        };
        let cause = if services.state.is_draining() {
            RedirectCause::Draining
        } else if room == Err(NoSlot::AtCapacity) {
            RedirectCause::Capacity
        } else if room.is_ok() && !route.number.is_home_in(&self.region) {
            RedirectCause::OutOfRegion
        } else {
            return false;
        };
        let home = route.number.home_region.as_deref();
        let regions = redirect_regions(home, &self.region, cause);
        let view = cluster.borrow().clone();
        let Some(peer) = choose_peer(&services.edge_id, &regions, &view.members) else {
            return false;
        };
        let contact = redirect_contact(&call.dialled, peer, call.transport);
        self.counter
            .get_or_create(&vec![("cause".to_owned(), cause.label().to_owned())])
            .inc();
        tracing::info!(call = %call.call_id, source = %call.source, dialled = %call.dialled,
            cause = cause.label(), peer = %peer.edge_id, %contact, "redirected an INVITE");
        endpoint.redirect(Instant::now(), &call.call_id, &contact);
        true
    }

    /// Whether this edge takes `call` itself, once no redirect was made: not before it is
    /// ready; while draining only as the drain's last resort.
    pub(super) fn intake(&self, state: &EdgeState, call: &IncomingCall) -> Intake {
        if !state.is_ready() {
            Intake::NotReady
        } else if !state.is_draining() {
            Intake::Open
        } else if state.takes_last_resort_calls(Instant::now(), self.last_resort) {
            tracing::info!(call = %call.call_id, source = %call.source,
                "draining with no live peer to take the call: taking it here");
            Intake::Open
        } else {
            Intake::Draining
        }
    }
}
