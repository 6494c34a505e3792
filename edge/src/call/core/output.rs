//! What a [`CallCore`](super::CallCore) asks its shell to do, and the queue it keeps those in.
//! Packets, RTCP reports and the recording's frames are copied into buffers the core keeps and
//! reuses from tick to tick, and lent out by [`Output`] (no allocation per packet once warm);
//! everything else is an owned value.

use std::collections::VecDeque;
use std::net::SocketAddr;

use freya_shared::model::call_payloads::CallEnded;
use freya_shared::model::CallEventData;

use super::legs::{LegId, LegRequest};
use crate::call::media::FRAME_SAMPLES;
use crate::call::provider_request::ProviderRequest;

/// One thing for the call's shell to do, drained with
/// [`CallCore::poll_output`](super::CallCore::poll_output) after every input.
#[derive(Debug)]
pub enum Output<'a> {
    /// Send this RTP packet (a media stream sends its payload) to `to`.
    Transmit { to: SocketAddr, packet: &'a [u8] },
    /// Send this RTCP report to `to`.
    Rtcp { to: SocketAddr, report: &'a [u8] },
    /// One tick of the call's recording: what the caller heard from us and what we heard.
    /// `gap` ticks before it were skipped by a stalled edge (see
    /// [`Pacer`](crate::rtp::pacer::Pacer)): the recording keeps them as silence, so it stays
    /// as long as the call.
    Record {
        gap: u64,
        sent: &'a [i16; FRAME_SAMPLES],
        received: Option<&'a [i16; FRAME_SAMPLES]>,
    },
    /// Record this call event (waiting rather than dropping: it is the call's record).
    Event(CallEventData),
    /// Ask the SIP side for this.
    Dialog(CallRequest),
    /// Start (or stop) this provider work; its results come back through
    /// [`CallCore::handle_provider`](super::CallCore::handle_provider).
    Provider(ProviderRequest),
    /// Everything the agent said has been sent (a media stream marks the spot).
    PlaybackFinished,
    /// The agent's queued audio was dropped (barge-in: a media stream clears its far buffer).
    PlaybackCut,
    /// This many more datagrams came from a stranger's address (for the edge's counter).
    ForeignPackets(u64),
    /// Send this RTP packet on an added leg's socket, to `to`.
    LegTransmit {
        leg: LegId,
        to: SocketAddr,
        packet: &'a [u8],
    },
    /// Send this RTCP report on an added leg's RTCP socket.
    LegRtcp {
        leg: LegId,
        to: SocketAddr,
        report: &'a [u8],
    },
    /// Send this frame of a leg that another edge carries over the mesh (encoded as
    /// [`MESH_PAYLOAD`](super::remote::MESH_PAYLOAD); the shell names the call and the peer).
    MeshTransmit {
        leg: LegId,
        sequence: u16,
        timestamp: u32,
        payload: &'a [u8],
    },
    /// Dial or hang up an added leg.
    Leg(LegRequest),
    /// The call is over; the last output. The shell sends our BYE when `hang_up` says so, puts
    /// its outcome in `record.bye_outcome`, and records it.
    Ended(CallEnding),
}

/// What a call asks of its dialog besides the BYE (the shell names the dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRequest {
    /// Transfer the call blindly (REFER) to a number or SIP URI.
    Transfer { destination: String },
    /// Send these digits by SIP INFO (the peer negotiated no telephone-event): the core asks
    /// for one key at a time, each when it is due (paced as RTP presses).
    SendDtmf { digits: String },
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEnding {
    /// The `call.ended` record, all but its `bye_outcome`.
    pub record: CallEnded,
    /// Whether we end it (send our BYE) rather than the far end.
    pub hang_up: bool,
}

/// An output waiting, its borrowed parts as indices into the [`Outbox`]'s buffers. The rare large
/// owned outputs (an event, the ending) wait boxed, so an entry stays small however long the
/// queue once grew: the queue holds about a hundred bytes per entry, not the largest event's
/// size ([`Output`] itself is only ever a value on the stack, between `pop` and the shell).
#[derive(Debug)]
enum Pending {
    Event(Box<CallEventData>),
    Dialog(CallRequest),
    Provider(ProviderRequest),
    Leg(LegRequest),
    PlaybackFinished,
    PlaybackCut,
    ForeignPackets(u64),
    Ended(Box<CallEnding>),
    Transmit {
        to: SocketAddr,
        slot: usize,
    },
    Rtcp {
        to: SocketAddr,
        slot: usize,
    },
    Record {
        slot: usize,
    },
    LegTransmit {
        leg: LegId,
        to: SocketAddr,
        slot: usize,
    },
    LegRtcp {
        leg: LegId,
        to: SocketAddr,
        slot: usize,
    },
    MeshTransmit {
        leg: LegId,
        sequence: u16,
        timestamp: u32,
        slot: usize,
    },
}

/// Entries, packets and recording ticks kept between batches: a burst above this (the opening
/// records, an ending, a late batch of packets) is given back once it was drained, so a call
/// does not keep the capacity of its largest batch for the rest of its life.
const KEEP_AFTER_BURST: usize = 8;

/// The core's outputs in order, with the buffers their packets and frames are lent from.
#[derive(Default)]
pub(super) struct Outbox {
    queue: VecDeque<Pending>,
    /// Packets and RTCP reports of the current batch; slots past `packets_used` are spare.
    packets: Vec<Vec<u8>>,
    packets_used: usize,
    /// Recording ticks of the current batch: ticks skipped before it, sent frame, received frame.
    frames: Vec<(u64, [i16; FRAME_SAMPLES], Option<[i16; FRAME_SAMPLES]>)>,
    frames_used: usize,
}

impl Outbox {
    /// A new batch of inputs: once the last batch was drained, its buffers are reused.
    pub(super) fn begin(&mut self) {
        if self.queue.is_empty() {
            self.packets_used = 0;
            self.frames_used = 0;
            if self.queue.capacity() > KEEP_AFTER_BURST {
                self.queue.shrink_to(KEEP_AFTER_BURST);
            }
            if self.packets.len() > KEEP_AFTER_BURST {
                self.packets.truncate(KEEP_AFTER_BURST);
                self.packets.shrink_to(KEEP_AFTER_BURST);
            }
            if self.frames.len() > KEEP_AFTER_BURST {
                self.frames.truncate(KEEP_AFTER_BURST);
                self.frames.shrink_to(KEEP_AFTER_BURST);
            }
        }
    }

    /// Queues `output`; a lent packet or frame is copied into the outbox's own buffers.
    pub(super) fn push(&mut self, output: Output<'static>) {
        let pending = match output {
            Output::Transmit { to, packet } => return self.push_packet(to, packet),
            Output::Rtcp { to, report } => return self.push_rtcp(to, report),
            Output::Record {
                gap,
                sent,
                received,
            } => return self.push_record(gap, sent, received),
            Output::Event(data) => Pending::Event(Box::new(data)),
            Output::Dialog(request) => Pending::Dialog(request),
            Output::Provider(request) => Pending::Provider(request),
            Output::Leg(request) => Pending::Leg(request),
            Output::LegTransmit { leg, to, packet } => {
                return self.push_leg_packet(leg, to, packet)
            }
            Output::LegRtcp { leg, to, report } => return self.push_leg_rtcp(leg, to, report),
            Output::MeshTransmit {
                leg,
                sequence,
                timestamp,
                payload,
            } => return self.push_mesh_frame(leg, sequence, timestamp, payload),
            Output::PlaybackFinished => Pending::PlaybackFinished,
            Output::PlaybackCut => Pending::PlaybackCut,
            Output::ForeignPackets(n) => Pending::ForeignPackets(n),
            Output::Ended(ending) => Pending::Ended(Box::new(ending)),
        };
        self.queue.push_back(pending);
    }

    pub(super) fn push_packet(&mut self, to: SocketAddr, packet: &[u8]) {
        let slot = self.copy(packet);
        self.queue.push_back(Pending::Transmit { to, slot });
    }

    pub(super) fn push_rtcp(&mut self, to: SocketAddr, report: &[u8]) {
        let slot = self.copy(report);
        self.queue.push_back(Pending::Rtcp { to, slot });
    }

    pub(super) fn push_leg_packet(&mut self, leg: LegId, to: SocketAddr, packet: &[u8]) {
        let slot = self.copy(packet);
        self.queue.push_back(Pending::LegTransmit { leg, to, slot });
    }

    pub(super) fn push_leg_rtcp(&mut self, leg: LegId, to: SocketAddr, report: &[u8]) {
        let slot = self.copy(report);
        self.queue.push_back(Pending::LegRtcp { leg, to, slot });
    }

    pub(super) fn push_mesh_frame(
        &mut self,
        leg: LegId,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) {
        let slot = self.copy(payload);
        self.queue.push_back(Pending::MeshTransmit {
            leg,
            sequence,
            timestamp,
            slot,
        });
    }

    /// Copies `bytes` into the next spare buffer; returns its slot.
    fn copy(&mut self, bytes: &[u8]) -> usize {
        let slot = self.packets_used;
        match self.packets.get_mut(slot) {
            Some(buffer) => {
                buffer.clear();
                buffer.extend_from_slice(bytes);
            }
            None => self.packets.push(bytes.to_vec()),
        }
        self.packets_used += 1;
        slot
    }

    pub(super) fn push_record(
        &mut self,
        gap: u64,
        sent: &[i16; FRAME_SAMPLES],
        received: Option<&[i16; FRAME_SAMPLES]>,
    ) {
        let tick = (gap, *sent, received.copied());
        let slot = self.frames_used;
        match self.frames.get_mut(slot) {
            Some(spare) => *spare = tick,
            None => self.frames.push(tick),
        }
        self.frames_used += 1;
        self.queue.push_back(Pending::Record { slot });
    }

    pub(super) fn pop(&mut self) -> Option<Output<'_>> {
        Some(match self.queue.pop_front()? {
            Pending::Event(data) => Output::Event(*data),
            Pending::Dialog(request) => Output::Dialog(request),
            Pending::Provider(request) => Output::Provider(request),
            Pending::Leg(request) => Output::Leg(request),
            Pending::PlaybackFinished => Output::PlaybackFinished,
            Pending::PlaybackCut => Output::PlaybackCut,
            Pending::ForeignPackets(n) => Output::ForeignPackets(n),
            Pending::Ended(ending) => Output::Ended(*ending),
            Pending::Transmit { to, slot } => Output::Transmit {
                to,
                packet: self
                    .packets
                    .get(slot)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            },
            Pending::Rtcp { to, slot } => Output::Rtcp {
                to,
                report: self
                    .packets
                    .get(slot)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            },
            Pending::LegTransmit { leg, to, slot } => Output::LegTransmit {
                leg,
                to,
                packet: self.slot(slot),
            },
            Pending::LegRtcp { leg, to, slot } => Output::LegRtcp {
                leg,
                to,
                report: self.slot(slot),
            },
            Pending::MeshTransmit {
                leg,
                sequence,
                timestamp,
                slot,
            } => Output::MeshTransmit {
                leg,
                sequence,
                timestamp,
                payload: self.slot(slot),
            },
            Pending::Record { slot } => {
                let (gap, sent, received) = self.frames.get(slot)?;
                Output::Record {
                    gap: *gap,
                    sent,
                    received: received.as_ref(),
                }
            }
        })
    }

    fn slot(&self, slot: usize) -> &[u8] {
        self.packets
            .get(slot)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
