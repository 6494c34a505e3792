//! Our side of a new call's SDP, built the one way whether we answer a call (`accept.rs`),
//! place one (`placing.rs`) or dial a further leg of a live call (`legs.rs`): the edge's codecs
//! at its public media address, the RTP port just bound, the fixed payload types and ptime.

use crate::call::ports::{MediaAddress, MediaAddresses, MediaSockets, PortAllocator};
use crate::call::task::CallServices;
use crate::sip::sdp::{Direction, LocalMedia};

/// What a new call's media is set up from, whether we answer the call or place it: the edge's
/// media addresses and RTP ports, the call services (codecs, state, events), and the call's SDP
/// session id.
pub(super) struct MediaSetup<'a> {
    pub(super) addresses: &'a MediaAddresses,
    pub(super) ports: &'a PortAllocator,
    pub(super) services: &'a CallServices,
    pub(super) session_id: u64,
}

impl<'a> MediaSetup<'a> {
    pub(super) fn new(
        addresses: &'a MediaAddresses,
        ports: &'a PortAllocator,
        services: &'a CallServices,
        session_id: u64,
    ) -> Self {
        Self {
            addresses,
            ports,
            services,
            session_id,
        }
    }

    /// Our side of the call's media as its SDP states it: the edge's codecs at the public
    /// `address`, the port bound for RTP, send and receive, Opus at 111, telephone-event at 101,
    /// 20 ms packets, RTCP on its own port.
    pub(super) fn local_media(
        &self,
        address: &MediaAddress,
        sockets: &MediaSockets,
        srtp: crate::sip::sdp::SrtpPolicy,
    ) -> LocalMedia {
        let port = sockets
            .rtp
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default();
        LocalMedia {
            codecs: self.services.media.codecs.to_vec(),
            address: address.public,
            port,
            direction: Direction::SendRecv,
            session_id: self.session_id,
            opus_payload_type: 111,
            telephone_event_payload_type: 101,
            ptime: 20,
            rtcp_mux: false,
            srtp,
        }
    }
}
