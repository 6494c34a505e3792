//! A SIP caller written by hand, for tests that need to control every header of a call: it
//! dials with a Call-ID of its choosing over UDP on 127.0.0.1, acknowledges the answer, writes
//! in-dialog requests with any tags, and hangs up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use freya_edge::media::g711::G711;
use freya_edge::sip::sdp::SessionDescription;
use freya_loadtest::audio::Utterance;
use tokio::net::UdpSocket;

use super::caller::ulaw;

/// Reads datagrams from `socket` until one starts with `prefix` (or `limit` passes, and the
/// panic names the first lines of what came instead).
pub async fn recv_sip(socket: &UdpSocket, prefix: &str, limit: Duration) -> String {
    let mut buf = vec![0u8; 65_536];
    let mut others = Vec::new();
    let found = tokio::time::timeout(limit, async {
        loop {
            let (n, _) = socket.recv_from(&mut buf).await.expect("recv");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(prefix) {
                return text;
            }
            others.push(first_line(&text));
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no `{prefix}` within {limit:?}; received instead: {others:?}"))
}

/// A message's start line, for failure messages.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}

/// RFC 3261's T1: a UDP INVITE is sent again after T1, 2·T1, 4·T1... until a response comes.
const T1: Duration = Duration::from_millis(500);
/// The longest wait between two sends of an INVITE.
const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(4);
/// How long a dialled call may take to be answered.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

/// A caller in an answered call: its SIP socket, the edge's RTP address, and how to write a
/// request in the call with given tags.
pub struct Call {
    /// The Call-ID the caller chose.
    pub call_id: String,
    /// The number dialled.
    pub number: String,
    pub sip: UdpSocket,
    pub sip_addr: SocketAddr,
    pub edge_sip: SocketAddr,
    pub edge_rtp: SocketAddr,
    /// The edge's To tag.
    pub tag: String,
}

pub const CALLER_TAG: &str = "rawcaller";

/// What the caller offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// PCMU and telephone-event: key presses travel in the RTP stream.
    PcmuWithEvents,
    /// PCMU alone: a phone whose key presses can only travel by SIP INFO.
    Pcmu,
}

/// The tag of `message`'s To header.
pub fn to_tag(message: &str) -> String {
    message
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .expect("a To tag")
        .trim()
        .to_owned()
}

impl Call {
    /// A caller on a socket of its own that has not dialled yet: its call to `number` will
    /// have Call-ID `call_id`.
    pub async fn new(edge_sip: SocketAddr, number: &str, call_id: &str) -> Self {
        let sip = UdpSocket::bind("127.0.0.1:0").await.expect("sip");
        let sip_addr = sip.local_addr().expect("addr");
        Call {
            call_id: call_id.to_owned(),
            number: number.to_owned(),
            sip,
            sip_addr,
            edge_sip,
            edge_rtp: edge_sip,
            tag: String::new(),
        }
    }

    /// The call's INVITE (CSeq 1) offering `sdp`.
    fn invite(&self, sdp: &str) -> String {
        self.request(
            "INVITE",
            1,
            self.sip_addr,
            CALLER_TAG,
            None,
            "application/sdp",
            sdp,
        )
    }

    /// Sends the call's INVITE (CSeq 1) offering `sdp`, and waits for nothing.
    pub async fn send_invite(&self, sdp: &str) {
        self.sip
            .send_to(self.invite(sdp).as_bytes(), self.edge_sip)
            .await
            .expect("INVITE");
    }

    /// Sends the INVITE as a UDP client transaction does (again at T1, 2·T1... until any
    /// response) and returns the 200. A failure response, or no answer within
    /// [`ANSWER_LIMIT`], fails the test with what the edge did say.
    async fn invite_until_answered(&self, sdp: &str) -> String {
        let invite = self.invite(sdp);
        let deadline = tokio::time::Instant::now() + ANSWER_LIMIT;
        let mut interval = T1;
        let mut resend_at = Some(tokio::time::Instant::now());
        let mut heard = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = tokio::time::Instant::now();
            if resend_at.is_some_and(|at| at <= now) {
                self.sip
                    .send_to(invite.as_bytes(), self.edge_sip)
                    .await
                    .expect("INVITE");
                resend_at = Some(now + interval);
                interval = (interval * 2).min(MAX_RESEND_INTERVAL);
            }
            let wake = resend_at.map_or(deadline, |at| at.min(deadline));
            match tokio::time::timeout_at(wake, self.sip.recv_from(&mut buf)).await {
                Ok(received) => {
                    let (n, _) = received.expect("recv");
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if text.starts_with("SIP/2.0 200") {
                        return text;
                    }
                    if text.starts_with("SIP/2.0 1") {
                        resend_at = None;
                    } else if text.starts_with("SIP/2.0 ") {
                        panic!("the INVITE was refused: {}", first_line(&text));
                    }
                    heard.push(first_line(&text));
                }
                Err(_) if tokio::time::Instant::now() >= deadline => panic!(
                    "no answer to the INVITE within {ANSWER_LIMIT:?}; received instead: {heard:?}"
                ),
                Err(_) => {}
            }
        }
    }
}

impl Call {
    /// A caller on RTP and SIP sockets of its own that has dialled `number` (Call-ID
    /// `call_id`) offering `offer`, and been answered: the call and its RTP socket.
    pub async fn dialled(
        edge_sip: SocketAddr,
        number: &str,
        call_id: &str,
        offer: Offer,
    ) -> (Self, UdpSocket) {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
        let call = Self::dial_offering(edge_sip, &rtp, number, call_id, offer).await;
        (call, rtp)
    }

    /// [`Call::dialled`] offering PCMU and telephone-event, then sending `hz` (silence for
    /// `None`) every 20 ms: the call, its RTP socket and the sender (abort it to stop).
    pub async fn sending_tone(
        edge_sip: SocketAddr,
        number: &str,
        call_id: &str,
        hz: Option<f64>,
    ) -> (Self, Arc<UdpSocket>, tokio::task::JoinHandle<()>) {
        let (call, rtp) = Self::dialled(edge_sip, number, call_id, Offer::PcmuWithEvents).await;
        let rtp = Arc::new(rtp);
        let sender = super::tones::send_tone(rtp.clone(), call.edge_rtp, hz);
        (call, rtp, sender)
    }

    /// Dials `number` with Call-ID `call_id`, offering `rtp` for media (PCMU and
    /// telephone-event), and acknowledges the answer.
    pub async fn dial(edge_sip: SocketAddr, rtp: &UdpSocket, number: &str, call_id: &str) -> Self {
        Self::dial_offering(edge_sip, rtp, number, call_id, Offer::PcmuWithEvents).await
    }

    /// [`Call::dial`] with the media `offer` of the caller's choosing.
    pub async fn dial_offering(
        edge_sip: SocketAddr,
        rtp: &UdpSocket,
        number: &str,
        call_id: &str,
        offer: Offer,
    ) -> Self {
        let rtp_port = rtp.local_addr().expect("addr").port();
        let media = match offer {
            Offer::PcmuWithEvents => {
                "RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
            }
            Offer::Pcmu => "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        };
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} {media}"
        );
        let mut call = Call::new(edge_sip, number, call_id).await;
        let ok = call.invite_until_answered(&sdp).await;
        call.tag = to_tag(&ok);
        let ack = call.request("ACK", 1, call.sip_addr, CALLER_TAG, Some(&call.tag), "", "");
        call.sip
            .send_to(ack.as_bytes(), edge_sip)
            .await
            .expect("ACK");
        let body = ok.split("\r\n\r\n").nth(1).expect("SDP");
        let answer = SessionDescription::parse(body.as_bytes()).expect("SDP answer");
        call.edge_rtp = SocketAddr::new("127.0.0.1".parse().expect("ip"), answer.media[0].port);
        call
    }

    /// `method` in the call from `via` (whose socket gets the response), with From tag
    /// `from_tag` and To tag `to_tag` (`None`: none).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        method: &str,
        cseq: u32,
        via: SocketAddr,
        from_tag: &str,
        to_tag: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> String {
        let (edge, caller) = (self.edge_sip, self.sip_addr);
        let (number, call_id) = (&self.number, &self.call_id);
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let content_type = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "{method} sip:{number}@{edge} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bK{method}{cseq}{from_tag}{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550009@{caller}>;tag={from_tag}\r\n\
             To: <sip:{number}@{edge}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{caller}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            via.port(),
            body.len()
        )
    }

    /// The caller hangs up (its BYE, with the dialog's tags) and the edge says 200.
    pub async fn hang_up(&self, cseq: u32) {
        let bye = self.request(
            "BYE",
            cseq,
            self.sip_addr,
            CALLER_TAG,
            Some(&self.tag),
            "",
            "",
        );
        self.sip
            .send_to(bye.as_bytes(), self.edge_sip)
            .await
            .expect("BYE");
        recv_sip(&self.sip, "SIP/2.0 200", Duration::from_secs(10)).await;
    }
}

/// What a hand-written caller says: one utterance (espeak-ng) and then silence, which ends its
/// turn, sent as PCMU RTP one 20 ms frame per tick of the caller's own loop.
pub struct CallerVoice {
    samples: Vec<i16>,
    next: usize,
    seq: u16,
}

impl CallerVoice {
    /// `text` spoken at 8 kHz, followed by `silence`.
    pub fn saying(text: &str, silence: Duration) -> Self {
        let mut samples = Utterance::speak(text)
            .expect("espeak-ng speaks")
            .samples
            .to_vec();
        let silent = (silence.as_millis() as usize) * 8;
        samples.extend(std::iter::repeat_n(0i16, silent));
        Self {
            samples,
            next: 0,
            seq: 0,
        }
    }

    /// Sends the next frame from `rtp` to `to`; nothing once all of it has been said.
    pub async fn send_frame(&mut self, rtp: &UdpSocket, to: SocketAddr) {
        if let Some(packet) = self.next_packet() {
            rtp.send_to(&packet, to).await.expect("RTP");
        }
    }

    /// The next frame as an RTP packet; none once all of it has been said.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        let frame = self.samples.get(self.next..self.next + 160)?;
        self.next += 160;
        let packet = pcmu_packet(self.seq, frame);
        self.seq = self.seq.wrapping_add(1);
        Some(packet)
    }
}

/// What a hand-written caller does at one 20 ms tick of [`talk_and_listen`].
pub enum Tick {
    /// Sends this RTP packet to the edge.
    Send(Vec<u8>),
    /// Sends nothing this time.
    Quiet,
    /// Ends the loop.
    Stop,
}

/// The caller's side of an answered `call` for at most `limit`: every 20 ms `tick`, given how
/// many loud frames ([`is_loud`]) the caller has heard so far, says what to send from `rtp`;
/// what the edge sends is counted, and its SIP requests are read and ignored. The loud frames
/// heard in all.
pub async fn talk_and_listen(
    call: &Call,
    rtp: &UdpSocket,
    limit: Duration,
    mut tick: impl FnMut(usize) -> Tick,
) -> usize {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let (mut sip_buf, mut rtp_buf) = (vec![0u8; 65_536], [0u8; 2048]);
    let mut loud_frames = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        tokio::select! {
            _ = ticker.tick() => match tick(loud_frames) {
                Tick::Send(packet) => {
                    rtp.send_to(&packet, call.edge_rtp).await.expect("RTP");
                }
                Tick::Quiet => {}
                Tick::Stop => break,
            },
            received = rtp.recv_from(&mut rtp_buf) => {
                let (n, _) = received.expect("RTP recv");
                if is_loud(&rtp_buf[..n]) {
                    loud_frames += 1;
                }
            }
            _ = call.sip.recv_from(&mut sip_buf) => {}
        }
    }
    loud_frames
}

/// One RTP packet of the hand-written caller: the 20 ms `frame` (160 samples at 8 kHz) in
/// PCMU, numbered `seq`, stamped as the `seq`-th frame of its stream.
pub fn pcmu_packet(seq: u16, frame: &[i16]) -> Vec<u8> {
    let mut payload = [0u8; 160];
    G711::Ulaw.encode(frame, &mut payload);
    let mut packet = vec![0x80, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&0x00c0_ffee_u32.to_be_bytes());
    packet.extend_from_slice(&payload);
    packet
}

/// Whether a PCMU RTP packet the caller received holds a loud sample (above 2000): the agent
/// speaking, not silence or comfort noise.
pub fn is_loud(packet: &[u8]) -> bool {
    let payload = packet.get(12..).unwrap_or_default();
    payload.iter().any(|b| ulaw(*b).abs() > 2000)
}

/// What the fake TTS says for each sentence in these callers' tests: two seconds of a loud
/// square wave at 24 kHz, so that every frame of it the caller hears is loud.
pub fn loud_sentence_audio() -> Vec<i16> {
    (0..48_000)
        .map(|i| if (i / 30) % 2 == 0 { 8000 } else { -8000 })
        .collect()
}
