//! Why a call ended (`call.ended`) or never got going (`call.failed`), as enums. On the wire each
//! is the same snake_case word edges have always written; a word this version does not know (from
//! a newer edge) is kept as it came in `Other`, never refused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! reason_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A reason this version does not name, as the edge wrote it.
            Other(String),
        }

        impl $name {
            /// The word stored and sent on.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)*
                    Self::Other(word) => word,
                }
            }

            /// The reason written `word`; never fails (unknown words are `Other`).
            pub fn parse(word: &str) -> Self {
                match word {
                    $($word => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::parse(&word))
            }
        }
    };
}

reason_enum! {
    /// Why one leg of a call (a party dialled into it, `call.leg_ended`) ended.
    LegEndReason {
        /// The party hung up (BYE).
        Hangup => "hangup",
        /// The party never answered within the dial timeout (we cancelled).
        NoAnswer => "no_answer",
        /// The dial failed (busy, refused, no trunk took it).
        DialFailed => "dial_failed",
        /// The party answered with media the edge cannot carry.
        UnsupportedMedia => "unsupported_media",
        /// The API asked for the leg to be hung up.
        HangupRequested => "hangup_requested",
        /// The other party of its bridge hung up, and nobody was left to talk to.
        BridgeEnded => "bridge_ended",
        /// The call itself ended.
        CallEnded => "call_ended",
        /// The edge would not dial it (too many legs, its number taken, the call over).
        Refused => "refused",
        /// No RTP from the party for the inactivity timeout.
        RtpTimeout => "rtp_timeout",
        /// The leg lives on another edge and the mesh stopped carrying it (the connection
        /// dropped, or no audio for `legs.remote_silence_ms`).
        MeshLost => "mesh_lost",
    }
}

reason_enum! {
    /// Why an answered (or ringing) call ended.
    EndReason {
        /// The caller of an inbound call hung up (BYE). The far end of either direction is
        /// `hangup_by: remote`; see [`EndReason::hangup_by`].
        CallerHangup => "caller_hangup",
        /// The called party of a call we placed hung up (BYE): the outbound twin of
        /// `caller_hangup`, which edges of contract 1 wrote for both directions.
        RemoteHangup => "remote_hangup",
        /// The caller gave up while it rang (CANCEL).
        CallerCancelled => "caller_cancelled",
        /// A media stream closed under the call.
        StreamClosed => "stream_closed",
        /// A media stream failed under the call.
        StreamFailed => "stream_failed",
        /// The SIP session timer lapsed.
        SessionExpired => "session_expired",
        /// The peer never acknowledged our answer to its re-INVITE.
        ReinviteUnacknowledged => "reinvite_unacknowledged",
        /// The control plane asked the edge to hang up.
        HangupRequested => "hangup_requested",
        /// The edge shut down under the call.
        EdgeShutdown => "edge_shutdown",
        /// The call reached its agent's time limit.
        MaxDuration => "max_duration",
        /// No RTP for the inactivity timeout.
        RtpTimeout => "rtp_timeout",
        /// Neither RTP nor RTCP while held.
        HoldTimeout => "hold_timeout",
        /// The agent transferred the call.
        Transferred => "transferred",
        /// The agent's end_call tool.
        EndCallTool => "end_call_tool",
        /// The agent's end-call phrase.
        EndCallPhrase => "end_call_phrase",
        /// The caller stayed silent past the reprompts.
        Silence => "silence",
        /// A workflow reached its exit.
        WorkflowExit => "workflow_exit",
        /// A workflow names something the edge does not have.
        WorkflowMisconfigured => "workflow_misconfigured",
        /// A workflow's agent cannot be built.
        AgentMisconfigured => "agent_misconfigured",
        /// A transfer the agent asked for failed.
        TransferFailed => "transfer_failed",
        /// The dialog was lost (a re-INVITE never acknowledged).
        SignallingFailed => "signalling_failed",
        /// The negotiated codec cannot be carried.
        UnsupportedCodec => "unsupported_codec",
        /// The call's media socket failed.
        MediaSocketError => "media_socket_error",
        /// The control plane lost the call's edge (recorded by the control plane itself): its
        /// heartbeats stopped, or its cluster peers declared it down (`ReportCluster`).
        EdgeLost => "edge_lost",
        /// The party the caller was bridged to hung up after the agent had left the call.
        BridgeEnded => "bridge_ended",
    }
}

reason_enum! {
    /// Why a call failed before it was answered.
    FailReason {
        /// The callee was busy.
        Busy => "busy",
        /// Nobody answered.
        NoAnswer => "no_answer",
        /// The provider reported the call failed.
        ProviderFailed => "provider_failed",
        /// The call was cancelled before it was answered.
        Canceled => "canceled",
        /// The edge is draining.
        EdgeDraining => "edge_draining",
        /// The edge carries all the calls it may.
        EdgeAtCapacity => "edge_at_capacity",
        /// No media address in the peer's IP family.
        NoMediaAddressFamily => "no_media_address_family",
        /// No free RTP port.
        NoMediaPorts => "no_media_ports",
        /// The callee's SDP answer is unusable.
        BadAnswerSdp => "bad_answer_sdp",
        /// No codec both sides have.
        NoCommonCodec => "no_common_codec",
        /// The offer's media encryption does not meet the edge's SRTP policy: SRTP required
        /// and not offered (or only over signalling without TLS), offered alone while disabled,
        /// or offered with no crypto suite we speak; or, for a call we placed, the callee's
        /// answer did not meet the trunk's `srtp` (plain RTP where SRTP is required, or a key
        /// we cannot use: see the failure's description).
        SrtpMismatch => "srtp_mismatch",
        /// The INVITE had no SDP offer.
        NoSdpOffer => "no_sdp_offer",
        /// The INVITE's SDP could not be read.
        BadSdp => "bad_sdp",
        /// The `from` of a placed call is not a valid SIP user.
        InvalidFrom => "invalid_from",
        /// The `to` of a placed call is not a valid SIP user.
        InvalidTo => "invalid_to",
        /// The workflow does not validate.
        WorkflowInvalid => "workflow_invalid",
        /// The workflow names something the edge does not have.
        WorkflowMisconfigured => "workflow_misconfigured",
        /// The agent cannot be built.
        AgentMisconfigured => "agent_misconfigured",
    }
}

reason_enum! {
    /// Whose "no" an outbound call's `call.failed` is (its `placement`): the control plane
    /// places a call again on another edge only when the edge that failed it says the fault was
    /// its own, and never when the callee answered (a 486 or 603 is the callee's word).
    Placement {
        /// This edge could not place the call: full, draining, shutting down, no media port, or
        /// every trunk failed with a transport error, a timeout before ringing or a 5xx/408.
        /// Another edge may succeed.
        Edge => "edge",
        /// The callee's answer: busy, declined, not found, or no answer after ringing.
        Callee => "callee",
        /// The request itself: an unknown agent, an invalid number, no provider for it. No
        /// other edge would do better.
        Request => "request",
    }
}

reason_enum! {
    /// Who ended a call, by side, whichever way it was dialled (`call.ended`'s `hangup_by`).
    HangupBy {
        /// The other party: the caller of an inbound call, the called party of an outbound one.
        Remote => "remote",
        /// Our agent or workflow (its end_call tool or phrase, a transfer, silence, an exit).
        Agent => "agent",
        /// The control plane's hang-up request (`POST /v1/calls/{id}/hangup`).
        Api => "api",
        /// The edge itself: max duration, RTP or hold timeout, shutdown, errors.
        System => "system",
        /// Contract 1's word for the far end of either direction (read as [`HangupBy::Remote`]
        /// by [`HangupBy::side`]; stored as it came).
        Caller => "caller",
    }
}

impl HangupBy {
    /// The side this names, reading contract 1's `caller` as `remote`. Contract 1 also wrote
    /// `agent` for every end the edge made (max duration, timeouts, API hang-ups), so an old
    /// record's `agent` means "our side", not necessarily the agent.
    pub fn side(&self) -> HangupBy {
        match self {
            Self::Caller => Self::Remote,
            other => other.clone(),
        }
    }
}

impl EndReason {
    /// Who ends a call that ends for this reason.
    pub fn hangup_by(&self) -> HangupBy {
        match self {
            Self::CallerHangup
            | Self::RemoteHangup
            | Self::CallerCancelled
            | Self::StreamClosed
            | Self::BridgeEnded => HangupBy::Remote,
            Self::HangupRequested => HangupBy::Api,
            Self::Transferred
            | Self::EndCallTool
            | Self::EndCallPhrase
            | Self::Silence
            | Self::WorkflowExit => HangupBy::Agent,
            Self::StreamFailed
            | Self::SessionExpired
            | Self::ReinviteUnacknowledged
            | Self::EdgeShutdown
            | Self::MaxDuration
            | Self::RtpTimeout
            | Self::HoldTimeout
            | Self::WorkflowMisconfigured
            | Self::AgentMisconfigured
            | Self::TransferFailed
            | Self::SignallingFailed
            | Self::UnsupportedCodec
            | Self::MediaSocketError
            | Self::EdgeLost
            | Self::Other(_) => HangupBy::System,
        }
    }

    /// The same end seen from a call we placed: the far end's BYE is `remote_hangup` there.
    pub fn for_outbound(self) -> Self {
        match self {
            Self::CallerHangup => Self::RemoteHangup,
            other => other,
        }
    }
}

impl From<&str> for EndReason {
    fn from(word: &str) -> Self {
        Self::parse(word)
    }
}

impl From<&str> for FailReason {
    fn from(word: &str) -> Self {
        Self::parse(word)
    }
}
