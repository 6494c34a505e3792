//! One call, start to end, as a tokio task: INVITE through the edge's
//! [`ClientInviteTransaction`], ACK, the media phase (see [`MediaSession`]), and BYE from
//! either side; every way it can go wrong ends as a [`CallFailure`] in the [`CallReport`].

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Instant;

use freya_edge::rtp::arrival::{recv_stamped, stamp_arrivals};
use freya_edge::sip::message::cseq;
use freya_edge::sip::response::to_bytes;
use freya_edge::sip::sdp::{offer, read_answer, Direction, LocalMedia, SessionDescription};
use freya_edge::sip::{
    build_response, status, ClientInviteTransaction, ClientNonInviteTransaction,
    ServerNonInviteTransaction, Timers, TransactionEvent, TransactionKey, Transmit,
};
use rsip::headers::UntypedHeader;
use rsip::{Method, Request, Response, SipMessage};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::dialog::Dialog;
use super::endpoint::{Inbound, SipEndpoint};
use super::media::MediaSession;
use super::{CallConfig, CallFailure, CallReport, HangupSide};
use crate::onset::millis;

/// Places one call and reports on it; never panics on anything the network sends.
pub async fn place_call(
    endpoint: &SipEndpoint,
    config: &CallConfig,
    cancel: &CancellationToken,
) -> CallReport {
    let call_id = format!("{:016x}@freya-loadtest", rand::random::<u64>());
    let mut report = CallReport {
        call_id: call_id.clone(),
        ..CallReport::default()
    };
    let mut inbox = endpoint.register(&call_id);
    let mut call = Call {
        endpoint,
        config,
        cancel,
        inbox: &mut inbox,
        report: &mut report,
        target: config.target,
        moved_to: None,
    };
    if let Err(failure) = call.run(call_id.clone()).await {
        report.failure = Some(failure);
    }
    endpoint.leave(&call_id);
    report
}

fn local(error: impl Display) -> CallFailure {
    CallFailure::Local {
        reason: error.to_string(),
    }
}

/// Where a call's media goes: our sockets and the far end's addresses.
struct MediaPath<'a> {
    /// Read on each turn of the call's loop rather than awaited: packets keep the kernel's
    /// arrival stamps, so waking the call for every packet would buy nothing but wake-ups.
    rtp: &'a std::net::UdpSocket,
    /// `None` when RTCP shares the RTP socket.
    rtcp: Option<&'a UdpSocket>,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
}

struct Call<'a> {
    endpoint: &'a SipEndpoint,
    config: &'a CallConfig,
    cancel: &'a CancellationToken,
    inbox: &'a mut mpsc::Receiver<Inbound>,
    report: &'a mut CallReport,
    /// Where the call's requests go: the scenario's target, or the Contact of a 302 followed.
    target: SocketAddr,
    /// The Contact URI of a 3xx to the INVITE, for [`Call::invite`] to follow once.
    moved_to: Option<String>,
}

/// The Request-URI and address of a 3xx's Contact (`<sip:user@host:port;params>`).
fn contact_target(contact: &str) -> Option<(String, SocketAddr)> {
    let uri = contact.trim().trim_start_matches('<');
    let uri = uri.split('>').next()?.trim().to_owned();
    let rest = uri.strip_prefix("sip:")?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split(';').next()?;
    Some((uri.clone(), host_port.parse().ok()?))
}

/// Most datagrams read from the RTP socket per turn of a call's loop (the far end sends one per
/// 20 ms); a flood waits in the socket rather than holding the loop.
const MAX_READS_PER_TURN: usize = 16;

/// Sends an RTCP report on its own socket, or on the RTP one when they are multiplexed; a full
/// socket buffer drops it.
fn send_rtcp(rtp: &std::net::UdpSocket, rtcp: Option<&UdpSocket>, report: &[u8], to: SocketAddr) {
    let _ = match rtcp {
        Some(rtcp) => rtcp.try_send_to(report, to),
        None => rtp.send_to(report, to),
    };
}

impl Call<'_> {
    async fn run(&mut self, call_id: String) -> Result<(), CallFailure> {
        let config = self.config;
        let local_sip = self.endpoint.local_addr().map_err(local)?;
        let (rtp, rtcp) = bind_media(config).await.map_err(local)?;
        // Inter-arrival and jitter are measured on the kernel's arrival stamps: free of this
        // process's own scheduling delays, and exact however late a packet is read.
        stamp_arrivals(&rtp).map_err(local)?;
        let local_media = LocalMedia {
            codecs: vec![config.codec],
            address: config.media_ip,
            port: rtp.local_addr().map_err(local)?.port(),
            direction: Direction::SendRecv,
            session_id: u64::from(rand::random::<u32>()),
            opus_payload_type: 111,
            telephone_event_payload_type: 101,
            ptime: 20,
            rtcp_mux: config.media.rtcp_mux,
            srtp: freya_edge::sip::sdp::SrtpPolicy::Disabled,
        };
        let sdp = offer(&local_media);
        let start = Instant::now();
        let (mut dialog, mut invite_tx, answer, answered) =
            match self.invite(&call_id, &sdp, None, local_sip, start).await {
                Err(CallFailure::Rejected { code: 300..=399 }) if self.moved_to.is_some() => {
                    // Followed once: a second 3xx is the call's failure.
                    let moved = self.moved_to.take().and_then(|c| contact_target(&c));
                    let Some((uri, target)) = moved else {
                        return Err(CallFailure::Rejected { code: 302 });
                    };
                    self.target = target;
                    self.report.redirects += 1;
                    self.invite(&call_id, &sdp, Some(uri), local_sip, start)
                        .await?
                }
                other => other?,
            };
        self.report.setup_ms = Some(millis(start, answered));
        self.report.edge = Some(self.target);
        dialog.update_from_response(&answer);
        let (invite_cseq, _) = cseq(&answer.headers).map_err(local)?;
        let ack = to_bytes(dialog.ack(invite_cseq).map_err(local)?);
        self.send(&ack, self.target).await;

        let negotiated =
            SessionDescription::parse(&answer.body).and_then(|sdp| read_answer(&sdp, &local_media));
        let negotiated = match negotiated {
            Ok(n) => n,
            Err(error) => {
                self.hang_up(&mut dialog, start).await;
                return Err(CallFailure::BadAnswer {
                    reason: error.to_string(),
                });
            }
        };
        let mut media = match MediaSession::new(&negotiated, answered, config) {
            Ok(media) => media,
            Err(reason) => {
                self.hang_up(&mut dialog, start).await;
                return Err(CallFailure::Local { reason });
            }
        };
        // Without multiplexing, RTCP goes from and to the odd ports.
        let rtcp = if negotiated.rtcp_mux {
            None
        } else {
            rtcp.as_ref()
        };
        if let Some(tap) = &config.received_audio {
            media.record_into(tap.clone());
        }
        // Off the reactor: read when the loop turns, never awaited.
        let rtp = rtp.into_std().map_err(local)?;
        let hung_up_by = self
            .converse(
                MediaPath {
                    rtp: &rtp,
                    rtcp,
                    remote_rtp: negotiated.remote_rtp,
                    remote_rtcp: negotiated.remote_rtcp,
                },
                &mut media,
                &mut invite_tx,
                &ack,
                answered,
            )
            .await?;
        let ended = Instant::now();
        if let Some(report) = media.close_rtcp(ended) {
            send_rtcp(&rtp, rtcp, report, negotiated.remote_rtcp);
        }
        if hung_up_by == HangupSide::Caller || self.report.failure.is_some() {
            self.hang_up(&mut dialog, start).await;
        }
        self.report.talk_ms = Some(millis(answered, ended));
        self.report.hung_up_by = Some(hung_up_by);
        let conversation = media.conversation();
        self.report.first_audio_ms = conversation.first_audio_ms;
        self.report.v2v_ms = conversation.v2v_ms.clone();
        self.report.barge_in_ms = conversation.barge_in_ms.clone();
        self.report.turns_spoken = conversation.turns_spoken;
        self.report.rtp_sent = media.sent();
        self.report.rtcp = media.rtcp().into();
        self.report.dtmf_sent = media.dtmf_sent();
        self.report.rtp = media.stats().summary();
        self.report.gaps_micros = Some(media.stats().gaps_micros().clone());
        self.report.send_late_p99_ms =
            media.send_lateness().value_at_quantile(0.99) as f64 / 1000.0;
        self.report.send_lateness_micros = Some(media.send_lateness().clone());
        if let Some(failure) = self.report.failure.take() {
            return Err(failure);
        }
        if self.report.rtp.received == 0 {
            return Err(CallFailure::NoAudio);
        }
        Ok(())
    }

    /// Sends the INVITE (to `uri`, else the number at the target) and waits for its answer:
    /// the dialog, the transaction (it retransmits the ACK's trigger), the 2xx and its time.
    async fn invite(
        &mut self,
        call_id: &str,
        sdp: &str,
        uri: Option<String>,
        local_sip: SocketAddr,
        start: Instant,
    ) -> Result<(Dialog, ClientInviteTransaction, Response, Instant), CallFailure> {
        let config = self.config;
        let mut dialog = Dialog::new(
            call_id.to_owned(),
            &config.number,
            &config.caller,
            self.target,
            local_sip,
        );
        if let Some(uri) = uri {
            dialog.remote_target = uri.clone();
            dialog.request_uri = uri;
        }
        let invite = dialog.invite(sdp).map_err(local)?;
        let mut tx = ClientInviteTransaction::new(
            Instant::now(),
            invite,
            self.target,
            false,
            Timers::default(),
        )
        .map_err(local)?;
        let (answer, answered) = self.await_answer(&mut tx, start).await?;
        Ok((dialog, tx, answer, answered))
    }

    /// Runs the INVITE transaction to a 2xx (returned with its arrival time) or a failure.
    async fn await_answer(
        &mut self,
        tx: &mut ClientInviteTransaction,
        start: Instant,
    ) -> Result<(Response, Instant), CallFailure> {
        let deadline = start + self.config.setup_timeout;
        loop {
            self.flush(std::iter::from_fn(|| tx.poll_transmit())).await;
            while let Some(event) = tx.poll_event() {
                match event {
                    TransactionEvent::Response(response) => {
                        let now = Instant::now();
                        let code = response.status_code.code();
                        match code {
                            100..=199 => {
                                self.report
                                    .first_provisional_ms
                                    .get_or_insert(millis(start, now));
                                if code == 180 || code == 183 {
                                    self.report.ringing_ms.get_or_insert(millis(start, now));
                                }
                            }
                            200..=299 => return Ok((response, now)),
                            _ => {
                                if (300..=399).contains(&code) && self.report.redirects == 0 {
                                    self.moved_to = response.headers.iter().find_map(|h| match h {
                                        rsip::Header::Contact(c) => Some(c.value().to_owned()),
                                        _ => None,
                                    });
                                }
                                // The transaction has queued the ACK for it.
                                self.flush(std::iter::from_fn(|| tx.poll_transmit())).await;
                                return Err(CallFailure::Rejected { code });
                            }
                        }
                    }
                    TransactionEvent::Timeout => return Err(CallFailure::Timeout),
                    _ => {}
                }
            }
            let wake = tx.poll_timeout().map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(CallFailure::Cancelled),
                inbound = self.inbox.recv() => match inbound {
                    Some(Inbound { message: SipMessage::Response(r), .. }) if is_answer_to(&r, Method::Invite) => {
                        // Only this transaction's: after a 302 is followed, the first edge's
                        // retransmitted 302 (its ACK late or lost) must not fail the new INVITE.
                        if answers(&r, tx) {
                            tx.handle_response(Instant::now(), r);
                        }
                    }
                    Some(_) => {}
                    None => return Err(CallFailure::Cancelled),
                },
                _ = sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CallFailure::Timeout);
                    }
                    tx.handle_timeout(now);
                }
            }
        }
    }

    /// The answered call: audio both ways until one side hangs up; returns which one did.
    async fn converse(
        &mut self,
        path: MediaPath<'_>,
        media: &mut MediaSession,
        invite_tx: &mut ClientInviteTransaction,
        ack: &[u8],
        answered: Instant,
    ) -> Result<HangupSide, CallFailure> {
        let config = self.config;
        let hold_until = answered + config.hold;
        let end_at = match config.hangup {
            HangupSide::Caller => hold_until,
            HangupSide::Callee => hold_until + config.callee_grace,
        };
        let MediaPath {
            rtp,
            rtcp,
            remote_rtp,
            remote_rtcp,
        } = path;
        let mut datagram = [0u8; 2048];
        let mut rtcp_datagram = [0u8; 1500];
        // One timer, moved rather than rebuilt on each turn of the loop.
        let timer = sleep_until(media.poll_timeout().min(end_at).into());
        tokio::pin!(timer);
        loop {
            let mut wake = media.poll_timeout().min(end_at);
            if let Some(t) = invite_tx.poll_timeout() {
                wake = wake.min(t);
            }
            let wake = tokio::time::Instant::from_std(wake);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.report.failure = Some(CallFailure::Cancelled);
                    return Ok(HangupSide::Caller);
                }
                inbound = self.inbox.recv() => match inbound {
                    Some(Inbound { message: SipMessage::Response(r), .. }) => {
                        if is_answer_to(&r, Method::Invite) {
                            invite_tx.handle_response(Instant::now(), r);
                        }
                    }
                    Some(Inbound { message: SipMessage::Request(request), source }) => {
                        let is_bye = request.method == Method::Bye;
                        self.answer_request(request, source).await;
                        if is_bye {
                            return Ok(HangupSide::Callee);
                        }
                    }
                    None => {
                        self.report.failure = Some(CallFailure::Cancelled);
                        return Ok(HangupSide::Caller);
                    }
                },
                received = async {
                    match rtcp {
                        Some(rtcp) => rtcp.recv_from(&mut rtcp_datagram).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Ok((len, _)) = received {
                        media.on_datagram(Instant::now(), rtcp_datagram.get(..len).unwrap_or_default());
                    }
                }
                _ = &mut timer => {}
            }
            let now = Instant::now();
            for _ in 0..MAX_READS_PER_TURN {
                match recv_stamped(rtp, &mut datagram, now) {
                    Ok(received) => media.on_datagram(
                        received.arrived,
                        datagram.get(..received.len).unwrap_or_default(),
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {}
                }
            }
            if invite_tx.poll_timeout().is_some_and(|t| t <= now) {
                invite_tx.handle_timeout(now);
            }
            while let Some(event) = invite_tx.poll_event() {
                // A retransmitted 2xx means our ACK was lost: send it again.
                if let TransactionEvent::Response(r) = event {
                    if r.status_code.code() / 100 == 2 {
                        self.send(ack, self.target).await;
                    }
                }
            }
            media.tick(now, |bytes| {
                // A full socket buffer drops this packet, as a congested network would.
                let _ = rtp.send_to(bytes, remote_rtp);
            });
            if let Some(report) = media.poll_rtcp(now) {
                send_rtcp(rtp, rtcp, report, remote_rtcp);
            }
            if now >= end_at {
                if config.hangup == HangupSide::Callee {
                    self.report.failure = Some(CallFailure::NoByeFromCallee);
                }
                return Ok(HangupSide::Caller);
            }
        }
    }

    /// Answers a request inside the dialog (BYE, OPTIONS, INFO...) with 200 OK.
    async fn answer_request(&mut self, request: Request, source: SocketAddr) {
        if matches!(request.method, Method::Ack | Method::Invite) {
            return;
        }
        let now = Instant::now();
        let Ok(ok) = build_response(&request, status(200, "OK"), None) else {
            return;
        };
        let Ok(mut tx) =
            ServerNonInviteTransaction::new(now, request, source, false, Timers::default())
        else {
            return;
        };
        while tx.poll_event().is_some() {}
        if tx.respond(now, ok).is_ok() {
            self.flush(std::iter::from_fn(|| tx.poll_transmit())).await;
        }
    }

    /// Sends BYE and waits (bounded) for its final response.
    async fn hang_up(&mut self, dialog: &mut Dialog, _start: Instant) {
        let Ok(bye) = dialog.bye() else { return };
        let sent = Instant::now();
        let Ok(mut tx) =
            ClientNonInviteTransaction::new(sent, bye, self.target, false, Timers::default())
        else {
            return;
        };
        let deadline = sent + self.config.bye_timeout;
        loop {
            self.flush(std::iter::from_fn(|| tx.poll_transmit())).await;
            while let Some(event) = tx.poll_event() {
                match event {
                    TransactionEvent::Response(r) if r.status_code.code() >= 200 => {
                        self.report.bye_ms = Some(millis(sent, Instant::now()));
                        return;
                    }
                    TransactionEvent::Timeout | TransactionEvent::Terminated => return,
                    _ => {}
                }
            }
            let wake = tx.poll_timeout().map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                inbound = self.inbox.recv() => match inbound {
                    Some(Inbound { message: SipMessage::Response(r), .. }) if is_answer_to(&r, Method::Bye) => {
                        tx.handle_response(Instant::now(), r);
                    }
                    Some(Inbound { message: SipMessage::Request(request), source }) => {
                        // Both sides hung up at once: answer theirs too.
                        self.answer_request(request, source).await;
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    tx.handle_timeout(now);
                }
            }
        }
    }

    async fn flush(&self, transmits: impl Iterator<Item = Transmit>) {
        let transmits: Vec<Transmit> = transmits.collect();
        for t in transmits {
            self.send(&t.bytes, t.dest).await;
        }
    }

    async fn send(&self, bytes: &[u8], dest: SocketAddr) {
        if let Err(error) = self.endpoint.send(bytes, dest).await {
            tracing::debug!(%error, %dest, "SIP send failed");
        }
    }
}

/// The call's RTP socket, and with RTCP on its own port the odd one above it (RFC 3550 §11):
/// ephemeral ports are tried until an even one has its neighbour free.
async fn bind_media(config: &CallConfig) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
    if config.media.rtcp_mux {
        return Ok((UdpSocket::bind((config.media_ip, 0)).await?, None));
    }
    for _ in 0..64 {
        let rtp = UdpSocket::bind((config.media_ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((config.media_ip, port + 1)).await {
            return Ok((rtp, Some(rtcp)));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free even/odd port pair for RTP and RTCP",
    ))
}

/// Is `response` for a request of `method` (by its CSeq)?
fn is_answer_to(response: &Response, method: Method) -> bool {
    cseq(&response.headers).is_ok_and(|(_, m)| m == method)
}

/// Whether `response` belongs to `tx` (its top Via's branch and its CSeq method), rather than to
/// an earlier INVITE of the same call (a redirected one).
fn answers(response: &Response, tx: &ClientInviteTransaction) -> bool {
    TransactionKey::client(response).is_ok_and(|key| &key == tx.key())
}

#[cfg(test)]
mod tests {
    use super::contact_target;

    #[test]
    fn a_contact_gives_its_uri_and_address_and_nonsense_gives_nothing() {
        let (uri, addr) =
            contact_target("<sip:+4420@127.0.0.2:5070;freya-redirected>").expect("target");
        assert_eq!(uri, "sip:+4420@127.0.0.2:5070;freya-redirected");
        assert_eq!(addr, "127.0.0.2:5070".parse().expect("addr"));
        let (_, v6) = contact_target("<sip:demo@[::1]:5060;transport=tcp>").expect("v6");
        assert_eq!(v6, "[::1]:5060".parse().expect("addr"));
        assert!(contact_target("<tel:+4420>").is_none());
        assert!(contact_target("<sip:demo@host.example>").is_none());
    }
}
