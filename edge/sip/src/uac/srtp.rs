//! SRTP on one outbound attempt: whether the trunk's INVITE carries keys, and which. Keys are
//! fresh for every attempt (a trunk that fails never learns the keys the next one gets) and
//! travel only over TLS signalling unless the trunk allows otherwise; a trunk that requires
//! SRTP where keys may not travel is unusable, one that only prefers it gets a plain offer.

use super::{AttemptFailure, CallRequest, Trunk};
use crate::peer::Transport;
use crate::sdp::{secure_offer, OfferedKeys, SrtpPolicy};

/// What an attempt offered for SRTP, handed over with the answer so that the owner checks the
/// answer's key against it ([`crate::sdp::answer_keys`]) and runs the media with the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpOffered {
    /// The trunk's policy: whether a plain answer is acceptable.
    pub policy: SrtpPolicy,
    /// The keys offered, one per suite.
    pub keys: OfferedKeys,
}

/// The offer for `trunk` (the request's plain one, or with keys) and what it offered.
pub(super) fn offer_for(
    trunk: &Trunk,
    request: &CallRequest,
) -> Result<(String, Option<SrtpOffered>), AttemptFailure> {
    let plain = || Ok((request.offer.clone(), None));
    if trunk.srtp == SrtpPolicy::Disabled {
        return plain();
    }
    let keys_may_travel = trunk.peer.transport == Transport::Tls || trunk.srtp_without_tls;
    let refusal = if !request.srtp_media {
        Some("this call's media cannot carry SRTP")
    } else if !keys_may_travel {
        Some("SRTP keys are sent only over TLS signalling (srtp_allow_without_tls)")
    } else {
        None
    };
    match (refusal, trunk.srtp) {
        (Some(why), SrtpPolicy::Required) => Err(AttemptFailure::Unsendable(why.to_owned())),
        (Some(why), _) => {
            tracing::debug!(trunk = %trunk.name, why, "offering plain RTP");
            plain()
        }
        (None, policy) => {
            let keys = OfferedKeys::generate();
            let offer = secure_offer(&request.offer, policy, &keys);
            Ok((offer, Some(SrtpOffered { policy, keys })))
        }
    }
}
