//! A call core driven in simulated time, in the manner of quinn-proto's `Pair`: a simulated
//! caller sending 20 ms PCMU frames (speech as a voiced buzz, silence as zeros) with optional
//! loss, jitter and reordering; a fake provider side answering each [`ProviderRequest`] after a
//! chosen simulated delay; and a clock that steps to the earliest of the core's deadline, the
//! next caller frame and the next provider answer. Everything the core outputs is kept, dated.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use freya_shared::model::{AgentSpec, CallEventData};
use freya_shared::snapshot::AgentConfig;

use crate::call::core::{CallCore, CallEnding, CallRequest, CallStart, LegId, LegRequest, Output};
use crate::call::listener::tests::buzz;
use crate::call::media::tests::{audio, caller_packet, settings};
use crate::call::media::FRAME_SAMPLES;
use crate::call::pipeline::PipelineInput;
use crate::call::provider_request::{ProviderRequest, ProviderResult};
use crate::call::responder::PinnedWorkflow;
use crate::call::task::{CallDirection, CallSignal};
use crate::egress::{Egress, EgressConfig};
use crate::media::g711::decode_ulaw;
use crate::rtp::packet::RtpPacket;
use crate::speech::SttFailure;
use crate::voice::{VoiceDefaults, VoiceFactory};

pub(super) use super::answers::{says, Answers};

const FRAME: Duration = Duration::from_millis(20);

/// An agent whose providers are never reached (the fake side answers for them): a batch
/// recogniser, so turns are transcribed at their end.
pub(super) fn agent(extra: serde_json::Value) -> AgentConfig {
    let mut spec = serde_json::json!({
        "name": "Test agent",
        "system_prompt": "You help.",
        "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
        "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
        "tts": {"provider": "espeak"},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    AgentConfig {
        id: "agent-1".into(),
        workspace_id: "ws-1".into(),
        spec: serde_json::from_value::<AgentSpec>(spec).expect("agent spec"),
    }
}

fn factory() -> Arc<VoiceFactory> {
    let egress = Egress::new(&EgressConfig {
        allow_private_targets: true,
        proxy: None,
    })
    .expect("egress");
    Arc::new(VoiceFactory::new(
        reqwest::Client::new(),
        egress,
        VoiceDefaults::default(),
    ))
}

/// How the simulated network treats the caller's packets.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Network {
    /// Chance (0..1) a packet is lost.
    pub loss: f64,
    /// Extra delay drawn uniformly from 0..=jitter.
    pub jitter: Duration,
    /// Chance a packet is held back behind the next one.
    pub reorder: f64,
}

/// The simulated phone: a script of speech and silence, then silence for ever.
pub(super) struct Caller {
    script: VecDeque<(bool, u32)>,
    seq: u16,
    next_send: Instant,
    in_flight: Vec<(Instant, Vec<u8>)>,
    network: Network,
    rng: u64,
    from: SocketAddr,
    /// When each voiced frame was sent (the last one ends the caller's turn).
    pub voiced_sent: Vec<Instant>,
    /// A pure tone (Hz) instead of the voiced buzz, to tell parties apart in a mix.
    pub tone: Option<f64>,
}

impl Caller {
    fn new(start: Instant, from: SocketAddr) -> Self {
        Self {
            script: VecDeque::new(),
            seq: 1,
            next_send: start,
            in_flight: Vec::new(),
            network: Network::default(),
            rng: 0x9E37_79B9_7F4A_7C15,
            from,
            voiced_sent: Vec::new(),
            tone: None,
        }
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: deterministic, seeded per call.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next packet's send time.
    fn next_arrival(&self) -> Instant {
        let in_flight = self.in_flight.iter().map(|(at, _)| *at).min();
        in_flight.map_or(self.next_send, |at| at.min(self.next_send))
    }

    /// Sends every frame due by `now`; returns the packets that arrive by `now`.
    fn step(&mut self, now: Instant) -> Vec<(Instant, Vec<u8>)> {
        while self.next_send <= now {
            let sent = self.next_send;
            self.next_send += FRAME;
            let voiced = match self.script.front_mut() {
                Some((voiced, frames)) => {
                    let v = *voiced;
                    *frames -= 1;
                    if *frames == 0 {
                        self.script.pop_front();
                    }
                    v
                }
                None => false,
            };
            let pcm = if let (true, Some(hz)) = (voiced, self.tone) {
                self.voiced_sent.push(sent);
                super::parties::tone(hz, usize::from(self.seq))
            } else if voiced {
                self.voiced_sent.push(sent);
                buzz(usize::from(self.seq))
            } else {
                [0; FRAME_SAMPLES]
            };
            let mut payload = [0u8; FRAME_SAMPLES];
            crate::media::g711::encode_ulaw(&pcm, &mut payload);
            let packet = caller_packet(self.seq, 0, &payload);
            self.seq = self.seq.wrapping_add(1);
            if self.random() < self.network.loss {
                continue;
            }
            let mut at = sent + self.network.jitter.mul_f64(self.random());
            if self.random() < self.network.reorder {
                at += FRAME + Duration::from_millis(5);
            }
            self.in_flight.push((at, packet));
        }
        let mut arrived: Vec<_> = Vec::new();
        self.in_flight.retain(|(at, packet)| {
            let due = *at <= now;
            if due {
                arrived.push((*at, packet.clone()));
            }
            !due
        });
        arrived.sort_by_key(|(at, _)| *at);
        arrived
    }
}

/// The simulated call: the core, its caller, its fake providers, and what came out.
pub(super) struct Sim {
    pub core: CallCore,
    pub t0: Instant,
    pub now: Instant,
    pub caller: Caller,
    pub answers: Answers,
    scheduled: Vec<(Instant, ProviderResult)>,
    /// Every provider request, dated.
    pub requests: Vec<(Instant, ProviderRequest)>,
    /// Every call event, dated.
    pub events: Vec<(Instant, CallEventData)>,
    pub dialogs: Vec<(Instant, CallRequest)>,
    /// Each packet that reached the caller: when, and whether it carried sound.
    pub heard: Vec<(Instant, bool)>,
    pub ended: Option<(Instant, CallEnding)>,
    /// What each packet sent to the caller carried, decoded.
    pub caller_frames: Vec<(Instant, [i16; FRAME_SAMPLES])>,
    /// What each packet sent to an added leg carried, decoded.
    pub party_heard: Vec<(Instant, LegId, [i16; FRAME_SAMPLES])>,
    /// Dials and hang-ups of added legs the core asked for.
    pub leg_requests: Vec<(Instant, LegRequest)>,
    /// The simulated parties of added legs.
    pub parties: Vec<super::parties::Party>,
    /// Each tick of the recording (agents with `record: true`): when, and whether the caller's
    /// channel carried sound.
    pub recorded: Vec<(Instant, bool)>,
}

impl Sim {
    /// A call answered by `agent` (and `workflow` if given) at a simulated `t0`.
    pub(super) fn start(agent: &AgentConfig, workflow: Option<&PinnedWorkflow>) -> Self {
        Self::start_with(agent, workflow, Answers::default())
    }

    /// As [`start`](Self::start), the fake providers answering with `answers` from the first
    /// request (the greeting's) on.
    pub(super) fn start_with(
        agent: &AgentConfig,
        workflow: Option<&PinnedWorkflow>,
        answers: Answers,
    ) -> Self {
        Self::start_on(agent, workflow, answers, audio())
    }

    /// As [`start_with`](Self::start_with), on a call that negotiated `audio`.
    pub(super) fn start_on(
        agent: &AgentConfig,
        workflow: Option<&PinnedWorkflow>,
        answers: Answers,
        audio: crate::sip::sdp::NegotiatedAudio,
    ) -> Self {
        let t0 = Instant::now();
        let media = settings();
        let factory = factory();
        let start = CallStart {
            call_id: "call-1",
            dialog: "dialog-1",
            direction: CallDirection::Inbound,
            edge_id: "edge-1",
            agent,
            workflow,
            caller: "+15550001",
            dialled: "+15550002",
            provider: None,
            audio,
            media_stream: false,
            media: &media,
            voice: Some(&factory),
            // Recorded when the agent (a workflow's voice: the flow) says `record: true`.
            can_record: true,
            legs: crate::call::core::LegSettings::default(),
            trace_id: None,
            trace_span_id: None,
        };
        let core = CallCore::start(t0, start).expect("the call starts");
        let from = audio.remote_rtp;
        let mut sim = Self {
            core,
            t0,
            now: t0,
            caller: Caller::new(t0, from),
            answers,
            scheduled: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
            dialogs: Vec::new(),
            heard: Vec::new(),
            ended: None,
            caller_frames: Vec::new(),
            party_heard: Vec::new(),
            leg_requests: Vec::new(),
            parties: Vec::new(),
            recorded: Vec::new(),
        };
        sim.drain();
        sim
    }

    /// Milliseconds since the call began.
    pub(super) fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_millis() as u64
    }

    /// The caller speaks for `ms`, then (with [`pause`](Self::pause)) is silent.
    pub(super) fn say(&mut self, ms: u32) -> &mut Self {
        self.caller.script.push_back((true, ms / 20));
        self
    }

    pub(super) fn pause(&mut self, ms: u32) -> &mut Self {
        self.caller.script.push_back((false, ms / 20));
        self
    }

    pub(super) fn network(&mut self, network: Network) {
        self.caller.network = network;
    }

    /// Runs the call for `ms` of simulated time (or until it ends).
    pub(super) fn run_for(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        // A core that keeps asking for a deadline it does not move past would spin here.
        let mut stalled = 0;
        while self.ended.is_none() {
            let mut next = self.caller.next_arrival();
            if let Some(at) = self.core.poll_timeout() {
                next = next.min(at);
            }
            if let Some(at) = self.scheduled.iter().map(|(at, _)| *at).min() {
                next = next.min(at);
            }
            if let Some(at) = self.parties_next() {
                next = next.min(at);
            }
            if next > until {
                break;
            }
            stalled = if next <= self.now { stalled + 1 } else { 0 };
            assert!(
                stalled < 1000,
                "the call stalls at {} ms",
                self.ms(self.now)
            );
            self.now = self.now.max(next);
            let now = self.now;
            for (at, packet) in self.caller.step(now) {
                self.core.handle_datagram(at, self.caller.from, &packet);
                self.drain();
            }
            self.step_parties(now);
            let due: Vec<_> = {
                let (due, later) = std::mem::take(&mut self.scheduled)
                    .into_iter()
                    .partition(|(at, _)| *at <= now);
                self.scheduled = later;
                due
            };
            for (_, result) in due {
                self.core.handle_provider(now, result);
                self.drain();
            }
            if self.core.poll_timeout().is_some_and(|at| at <= now) {
                self.core.handle_timeout(now);
                self.drain();
            }
        }
        self.now = self.now.max(until);
    }

    /// A provider result handed in now, outside the fake side's schedule (a late or stray one).
    pub(super) fn deliver(&mut self, result: ProviderResult) {
        self.core.handle_provider(self.now, result);
        self.drain();
    }

    /// A signal from the SIP side, now.
    pub(super) fn signal(&mut self, signal: CallSignal) {
        self.core.handle_signal(self.now, signal);
        self.drain();
    }

    pub(super) fn drain(&mut self) {
        let now = self.now;
        let mut requests = Vec::new();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Transmit { packet, .. } => {
                    let mut pcm = [0i16; FRAME_SAMPLES];
                    match RtpPacket::parse(packet) {
                        Ok(p) if p.payload_type == 0 => {
                            decode_ulaw(p.payload, &mut pcm);
                        }
                        _ => {}
                    }
                    self.caller_frames.push((now, pcm));
                    // Telephone-events (payload type 101 here) are keys, not sound.
                    let loud = RtpPacket::parse(packet).is_ok_and(|p| {
                        p.payload_type != 101 && {
                            let mut pcm = [0i16; FRAME_SAMPLES];
                            let n = decode_ulaw(p.payload, &mut pcm);
                            pcm[..n].iter().any(|s| s.unsigned_abs() > 500)
                        }
                    });
                    self.heard.push((now, loud));
                }
                Output::Event(data) => self.events.push((now, data)),
                Output::Dialog(request) => self.dialogs.push((now, request)),
                Output::Provider(request) => requests.push(request),
                Output::Ended(ending) => self.ended = Some((now, ending)),
                Output::LegTransmit { leg, packet, .. } => {
                    let mut pcm = [0i16; FRAME_SAMPLES];
                    let n = RtpPacket::parse(packet)
                        .map(|p| decode_ulaw(p.payload, &mut pcm))
                        .unwrap_or(0);
                    self.party_heard.push((now, leg, pcm));
                    debug_assert!(n <= FRAME_SAMPLES);
                }
                Output::MeshTransmit { leg, payload, .. } => {
                    let mut pcm = [0i16; FRAME_SAMPLES];
                    decode_ulaw(payload, &mut pcm);
                    self.party_heard.push((now, leg, pcm));
                }
                Output::LegRtcp { .. } => {}
                Output::Leg(request) => self.leg_requests.push((now, request)),
                Output::Record { gap, received, .. } => {
                    self.recorded.extend((0..gap).map(|_| (now, false)));
                    let loud = received.is_some_and(|f| f.iter().any(|s| s.unsigned_abs() > 500));
                    self.recorded.push((now, loud));
                }
                Output::Rtcp { .. }
                | Output::PlaybackFinished
                | Output::PlaybackCut
                | Output::ForeignPackets(_) => {}
            }
        }
        for request in requests {
            self.answer(&request);
            self.requests.push((now, request));
        }
    }

    /// The fake provider side: schedules the answers to `request`.
    fn answer(&mut self, request: &ProviderRequest) {
        let now = self.now;
        let mut voice = |at: Instant, pipeline, input| {
            self.scheduled
                .push((at, ProviderResult::Voice { pipeline, input }));
        };
        match request {
            ProviderRequest::Transcribe { pipeline, turn, .. } => {
                let result = self
                    .answers
                    .transcripts
                    .pop_front()
                    .unwrap_or_else(|| Ok(String::new()))
                    .map_err(|detail| SttFailure {
                        detail,
                        missing_package: None,
                    });
                let input = PipelineInput::Transcript {
                    turn: *turn,
                    result,
                };
                voice(now + self.answers.stt_delay, *pipeline, input);
            }
            ProviderRequest::Complete {
                pipeline, stream, ..
            } => {
                let mut at = now;
                for (wait, item) in self.answers.completions.pop_front().unwrap_or_default() {
                    at += wait;
                    let input = PipelineInput::Llm {
                        stream: *stream,
                        item,
                    };
                    voice(at, *pipeline, input);
                }
            }
            ProviderRequest::Speak {
                pipeline,
                reply,
                sentence,
                ..
            } => {
                let at = now + self.answers.tts_delay;
                let samples = (0..self.answers.speech_ms as usize / 20)
                    .flat_map(|i| buzz(i + 1000))
                    .collect();
                let (reply, sentence) = (*reply, *sentence);
                let audio = PipelineInput::Audio {
                    reply,
                    sentence,
                    samples,
                };
                voice(at, *pipeline, audio);
                let done = PipelineInput::SpeechDone {
                    reply,
                    sentence,
                    error: self.answers.tts_error.clone(),
                };
                voice(at, *pipeline, done);
            }
            ProviderRequest::RunTool {
                pipeline,
                reply,
                call,
            } => {
                let (wait, result) = self
                    .answers
                    .tools
                    .iter()
                    .find(|(name, _, _)| *name == call.name)
                    .map(|(_, wait, result)| (*wait, result.clone()))
                    .unwrap_or((Duration::ZERO, Err("no such tool".into())));
                let input = PipelineInput::Tool {
                    reply: *reply,
                    call_id: call.id.clone(),
                    result,
                };
                voice(now + wait, *pipeline, input);
            }
            // Like the real shell, a cancelled reply's queued results may still arrive: they
            // stay scheduled, and the core must ignore them.
            ProviderRequest::Open { .. }
            | ProviderRequest::Close { .. }
            | ProviderRequest::CancelReply { .. }
            | ProviderRequest::LiveBegin { .. }
            | ProviderRequest::LiveAudio { .. }
            | ProviderRequest::CallFunction { .. } => {}
        }
    }

    /// The call events of one kind's payloads.
    pub(super) fn transcripts(&self) -> Vec<(String, String, bool)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                CallEventData::Transcript(t) => {
                    Some((t.role.clone(), t.text.clone(), t.interrupted))
                }
                _ => None,
            })
            .collect()
    }

    /// When sound (not silence) first reached the caller at or after `from`.
    pub(super) fn first_sound_after(&self, from: Instant) -> Option<Instant> {
        self.heard
            .iter()
            .find(|(at, loud)| *loud && *at >= from)
            .map(|(at, _)| *at)
    }

    /// When the last sound reached the caller.
    pub(super) fn last_sound(&self) -> Option<Instant> {
        self.heard
            .iter()
            .rev()
            .find(|(_, loud)| *loud)
            .map(|(at, _)| *at)
    }

    /// The requests of one kind, dated.
    pub(super) fn requests_where(
        &self,
        f: impl Fn(&ProviderRequest) -> bool,
    ) -> Vec<(Instant, &ProviderRequest)> {
        self.requests
            .iter()
            .filter(|(_, r)| f(r))
            .map(|(at, r)| (*at, r))
            .collect()
    }
}
