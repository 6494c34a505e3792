//! SDP offer/answer for one audio stream (RFC 3264): pick a codec from the offer by our
//! preference list, keep the offerer's payload type numbers, carry telephone-event (RFC 4733)
//! along, answer the direction, and reject every other stream with port 0.
//!
//! The same rules run the other way for outbound calls: [`offer`] writes what we can do and
//! [`read_answer`] reads what the far end chose.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::crypto::{self, CryptoAttribute, KeyMaterial, SrtpKeys, SrtpPolicy};
use super::{Direction, MediaDescription, SdpError, SessionDescription};

/// An audio codec the media pipeline can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus, dynamic payload type, `opus/48000/2`.
    Opus,
}

impl Codec {
    /// The codec a configuration name means (`pcmu`, `pcma`, `opus`; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pcmu, Self::Pcma, Self::Opus]
            .into_iter()
            .find(|c| c.encoding().eq_ignore_ascii_case(name))
    }

    /// The rtpmap encoding name.
    pub fn encoding(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48000,
        }
    }

    /// The static payload type, for codecs that have one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::Opus => None,
        }
    }

    /// The `a=fmtp` parameters we declare for this codec as a receiver. For Opus that is
    /// `useinbandfec=1` (RFC 7587 section 6.1): our decoder rebuilds a lost frame from the FEC
    /// copy in the next packet, but a sender only spends bits on that copy when the receiver's
    /// SDP asks for it.
    pub fn receiver_fmtp(self) -> Option<&'static str> {
        match self {
            Self::Opus => Some("useinbandfec=1"),
            Self::Pcmu | Self::Pcma => None,
        }
    }

    fn rtpmap_suffix(self) -> &'static str {
        match self {
            Self::Opus => "/2",
            Self::Pcmu | Self::Pcma => "",
        }
    }

    /// Does payload type `pt` of `media` carry this codec?
    fn is_offered_as(self, media: &MediaDescription, pt: u8) -> bool {
        match media.rtpmap(pt) {
            Some(map) => {
                map.encoding.eq_ignore_ascii_case(self.encoding())
                    && map.clock_rate == self.clock_rate()
                    && (self != Self::Opus || map.channels == Some(2))
            }
            None => self.static_payload_type() == Some(pt),
        }
    }
}

/// What we offer or accept: our codecs in preference order and where we receive RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Codecs we can use, most preferred first.
    pub codecs: Vec<Codec>,
    /// The address we receive RTP on, written in `o=` and `c=`.
    pub address: IpAddr,
    /// The RTP port we receive on.
    pub port: u16,
    /// The direction we would like (usually send-receive).
    pub direction: Direction,
    /// The `o=` session id (and version) we write.
    pub session_id: u64,
    /// Payload type for Opus in our offers.
    pub opus_payload_type: u8,
    /// Payload type for telephone-event in our offers.
    pub telephone_event_payload_type: u8,
    /// Packetization time we ask for when the peer states none, in milliseconds.
    pub ptime: u32,
    /// Offer RTCP multiplexed on the RTP port (RFC 5761); answers follow the offer instead.
    pub rtcp_mux: bool,
    /// Whether the stream may, must or must not be SRTP (`RTP/SAVP` with SDES keys).
    pub srtp: SrtpPolicy,
}

/// The outcome of negotiation: what the RTP and media code need for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// The chosen codec.
    pub codec: Codec,
    /// Its payload type (the offerer's number).
    pub payload_type: u8,
    /// The telephone-event payload type, if both sides do RFC 4733.
    pub telephone_event: Option<u8>,
    /// The telephone-event clock rate in Hz: the codec's, unless the peer only offered another
    /// (`telephone-event/8000` beside `opus/48000/2`, as Asterisk, FreeSWITCH and baresip do).
    /// Event durations count in this clock; meaningless without `telephone_event`.
    pub telephone_event_rate: u32,
    /// Where the peer receives RTP.
    pub remote_rtp: SocketAddr,
    /// Packetization time in milliseconds.
    pub ptime: u32,
    /// Our direction for the stream.
    pub direction: Direction,
    /// RTCP shares the RTP port both ways (RFC 5761).
    pub rtcp_mux: bool,
    /// Where the peer receives RTCP: its RTP address when multiplexed, else `a=rtcp` or RTP + 1.
    pub remote_rtcp: SocketAddr,
}

/// An SDP answer and what it agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer body, ready for a 200 OK.
    pub sdp: String,
    /// The negotiated stream.
    pub audio: NegotiatedAudio,
    /// The SRTP keys both ways when the stream is `RTP/SAVP`; ours are fresh for this answer.
    pub srtp: Option<SrtpKeys>,
}

/// Answers an offer (RFC 3264 section 6): the first usable audio stream gets the best codec by
/// `local.codecs` order; every other stream is rejected with port 0. Fails with
/// [`SdpError::NoCommonCodec`] (answer 488) when no offered codec is ours, and with an SRTP
/// error (488 too) when the stream's transport does not meet `local.srtp`.
pub fn answer(offer: &SessionDescription, local: &LocalMedia) -> Result<Answer, SdpError> {
    let mut chosen = None;
    let mut saw_audio = false;
    let mut refused = None;
    for (index, media) in offer.media.iter().enumerate() {
        if media.media != "audio" || media.port == 0 {
            continue;
        }
        let crypto = match crypto::stream_keys(media, local.srtp) {
            Ok(crypto) => crypto,
            Err(why) => {
                refused = refused.or(why);
                continue;
            }
        };
        saw_audio = true;
        if let Some((codec, pt)) = choose_codec(media, &local.codecs) {
            chosen = Some((index, media, codec, pt, crypto));
            break;
        }
    }
    let Some((index, media, codec, payload_type, crypto)) = chosen else {
        return Err(match (saw_audio, refused) {
            (true, _) => SdpError::NoCommonCodec,
            (false, Some(why)) => why,
            (false, None) => SdpError::NoAudio,
        });
    };
    let srtp = crypto.map(|theirs: CryptoAttribute| {
        let ours = KeyMaterial::generate(theirs.key.suite());
        (
            theirs.tag,
            SrtpKeys {
                ours,
                theirs: theirs.key,
            },
        )
    });
    // We always can: mux is answered whenever it is offered.
    let audio = negotiated(offer, media, (codec, payload_type), local, media.rtcp_mux)?;

    let mut sdp = session_header(local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            write_audio(&mut sdp, local, &media.proto, &audio, |pt| {
                media.fmtp(pt).map(str::to_owned)
            });
            if let Some((tag, keys)) = &srtp {
                sdp.push_str(&CryptoAttribute::line(*tag, &keys.ours));
            }
        } else {
            let first = m.formats.first().map_or("0", String::as_str);
            let _ = write!(sdp, "m={} 0 {} {}\r\n", m.media, m.proto, first);
        }
    }
    Ok(Answer {
        sdp,
        audio,
        srtp: srtp.map(|(_, keys)| keys),
    })
}

/// Writes our offer for an outbound call: every codec in `local.codecs`, plus telephone-event at
/// 8 kHz (and at 48 kHz when Opus is offered).
pub fn offer(local: &LocalMedia) -> String {
    let mut sdp = session_header(local);
    let mut formats = Vec::new();
    let mut maps = String::new();
    for &codec in &local.codecs {
        let pt = codec
            .static_payload_type()
            .unwrap_or(local.opus_payload_type);
        formats.push(pt.to_string());
        let _ = write!(
            maps,
            "a=rtpmap:{pt} {}/{}{}\r\n",
            codec.encoding(),
            codec.clock_rate(),
            codec.rtpmap_suffix()
        );
        if let Some(params) = codec.receiver_fmtp() {
            let _ = write!(maps, "a=fmtp:{pt} {params}\r\n");
        }
    }
    let te = local.telephone_event_payload_type;
    let mut te_rates = vec![(te, 8000)];
    if local.codecs.contains(&Codec::Opus) {
        te_rates.push((te.wrapping_add(1), 48000));
    }
    for (pt, rate) in te_rates {
        formats.push(pt.to_string());
        let _ = write!(
            maps,
            "a=rtpmap:{pt} telephone-event/{rate}\r\na=fmtp:{pt} 0-16\r\n"
        );
    }
    let _ = write!(
        sdp,
        "m=audio {} RTP/AVP {}\r\n{maps}a=ptime:{}\r\na={}\r\n",
        local.port,
        formats.join(" "),
        local.ptime,
        local.direction.as_str()
    );
    if local.rtcp_mux {
        sdp.push_str("a=rtcp-mux\r\n");
    }
    sdp
}

/// Reads the answer to our [`offer`]: the first accepted audio stream, its first format as the
/// codec (an answerer lists what it chose first).
pub fn read_answer(
    answer: &SessionDescription,
    local: &LocalMedia,
) -> Result<NegotiatedAudio, SdpError> {
    let media = answer
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let (codec, payload_type) = media
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| {
            local
                .codecs
                .iter()
                .find(|c| c.is_offered_as(media, pt))
                .map(|&c| (c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let rtcp_mux = local.rtcp_mux && media.rtcp_mux;
    negotiated(answer, media, (codec, payload_type), local, rtcp_mux)
}

/// What one audio stream comes to once its codec is chosen, read alike from an offer we answer
/// and from the answer to ours: the peer's address and direction (the stream's own over the
/// session's), its telephone-event and ptime, and RTCP muxed as `rtcp_mux` says.
fn negotiated(
    session: &SessionDescription,
    media: &MediaDescription,
    (codec, payload_type): (Codec, u8),
    local: &LocalMedia,
    rtcp_mux: bool,
) -> Result<NegotiatedAudio, SdpError> {
    let address = media
        .connection
        .or(session.connection)
        .ok_or(SdpError::MissingConnection)?;
    let their_direction = media
        .direction
        .or(session.direction)
        .unwrap_or(Direction::SendRecv);
    let events = telephone_event(media, codec.clock_rate());
    Ok(NegotiatedAudio {
        codec,
        payload_type,
        telephone_event: events.map(|(pt, _)| pt),
        telephone_event_rate: events.map_or(codec.clock_rate(), |(_, rate)| rate),
        remote_rtp: SocketAddr::new(address, media.port),
        ptime: media.ptime.unwrap_or(local.ptime),
        direction: Direction::answer_to(their_direction, local.direction),
        rtcp_mux,
        remote_rtcp: remote_rtcp(address, media, rtcp_mux),
    })
}

/// The peer's RTCP address: its RTP address when multiplexed, else `a=rtcp` or RTP + 1 (RFC
/// 3550 §11).
fn remote_rtcp(address: IpAddr, media: &MediaDescription, mux: bool) -> SocketAddr {
    let port = if mux {
        media.port
    } else {
        media
            .rtcp_port
            .unwrap_or_else(|| media.port.saturating_add(1))
    };
    SocketAddr::new(address, port)
}

fn choose_codec(media: &MediaDescription, preference: &[Codec]) -> Option<(Codec, u8)> {
    preference.iter().find_map(|&codec| {
        media
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .find(|&pt| codec.is_offered_as(media, pt))
            .map(|pt| (codec, pt))
    })
}

/// The offered telephone-event payload type and its clock rate. RFC 4733 section 2.1 ties the
/// event's clock to the audio codec's, so that rate is preferred; but Asterisk, FreeSWITCH and
/// baresip offer `telephone-event/8000` beside `opus/48000/2`, and refusing it loses every
/// digit the caller presses. So, failing the codec's rate, 8000, and failing that any rate the
/// offer lists (the first). The answer repeats the rate chosen.
fn telephone_event(media: &MediaDescription, clock_rate: u32) -> Option<(u8, u32)> {
    let offered = || {
        media.rtpmaps.iter().filter(|m| {
            m.encoding.eq_ignore_ascii_case("telephone-event")
                && m.clock_rate > 0
                && media
                    .formats
                    .iter()
                    .any(|f| f.parse::<u8>().ok() == Some(m.payload_type))
        })
    };
    offered()
        .find(|m| m.clock_rate == clock_rate)
        .or_else(|| offered().find(|m| m.clock_rate == 8000))
        .or_else(|| offered().next())
        .map(|m| (m.payload_type, m.clock_rate))
}

fn session_header(local: &LocalMedia) -> String {
    let family = if local.address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    format!(
        "v=0\r\no=freya {id} {id} IN {family} {addr}\r\ns=freya\r\nc=IN {family} {addr}\r\nt=0 0\r\n",
        id = local.session_id,
        addr = local.address,
    )
}

fn write_audio(
    sdp: &mut String,
    local: &LocalMedia,
    proto: &str,
    audio: &NegotiatedAudio,
    offered_fmtp: impl Fn(u8) -> Option<String>,
) {
    let pt = audio.payload_type;
    let codec = audio.codec;
    let _ = write!(sdp, "m=audio {} {proto} {pt}", local.port);
    if let Some(te) = audio.telephone_event {
        let _ = write!(sdp, " {te}");
    }
    let _ = write!(
        sdp,
        "\r\na=rtpmap:{pt} {}/{}{}\r\n",
        codec.encoding(),
        codec.clock_rate(),
        codec.rtpmap_suffix()
    );
    if let Some(params) = codec.receiver_fmtp() {
        let _ = write!(sdp, "a=fmtp:{pt} {params}\r\n");
    }
    if let Some(te) = audio.telephone_event {
        let _ = write!(
            sdp,
            "a=rtpmap:{te} telephone-event/{}\r\n",
            audio.telephone_event_rate
        );
        let events = offered_fmtp(te).unwrap_or_else(|| "0-15".to_owned());
        let _ = write!(sdp, "a=fmtp:{te} {events}\r\n");
    }
    let _ = write!(
        sdp,
        "a=ptime:{}\r\na={}\r\n",
        audio.ptime,
        audio.direction.as_str()
    );
    if audio.rtcp_mux {
        sdp.push_str("a=rtcp-mux\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::tests::{answer_pcmu, local, parse, OFFER};

    #[test]
    fn preference_list_picks_the_codec_and_keeps_the_offerers_payload_types() {
        let answer = answer(&parse(OFFER), &local(vec![Codec::Pcmu, Codec::Opus])).unwrap();
        assert_eq!(answer.audio.codec, Codec::Pcmu);
        assert_eq!(answer.audio.payload_type, 0);
        assert_eq!(answer.audio.telephone_event, Some(101));
        assert_eq!(
            answer.audio.remote_rtp,
            "198.51.100.1:49170".parse().unwrap()
        );
        let sdp = parse(&answer.sdp);
        assert_eq!(sdp.media[0].port, 30000);
        assert_eq!(sdp.media[0].formats, ["0", "101"]);
        assert_eq!(sdp.media[0].fmtp(101), Some("0-16"));
        assert_eq!(sdp.connection, Some("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn opus_is_chosen_with_its_dynamic_payload_type() {
        let answer = answer(&parse(OFFER), &local(vec![Codec::Opus, Codec::Pcmu])).unwrap();
        assert_eq!(
            (answer.audio.codec, answer.audio.payload_type),
            (Codec::Opus, 111)
        );
        assert_eq!(
            (
                answer.audio.telephone_event,
                answer.audio.telephone_event_rate
            ),
            (Some(101), 8000),
            "no telephone-event/48000 offered: the 8000 one is taken"
        );
        assert!(answer.sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
    }

    #[test]
    fn an_opus_answer_and_offer_ask_the_sender_for_in_band_fec() {
        let answered = answer(&parse(OFFER), &local(vec![Codec::Opus])).unwrap();
        let sdp = parse(&answered.sdp);
        assert_eq!(sdp.media[0].fmtp(111), Some("useinbandfec=1"));
        let g711 = answer_pcmu(OFFER).unwrap();
        assert_eq!(parse(&g711.sdp).media[0].fmtp(0), None, "G.711 has no FEC");
        let ours = parse(&offer(&local(vec![Codec::Opus, Codec::Pcmu])));
        assert_eq!(ours.media[0].fmtp(111), Some("useinbandfec=1"));
    }

    #[test]
    fn rtcp_goes_to_the_next_port_or_where_the_offer_says_or_is_muxed_when_offered() {
        let plain = OFFER.replace("a=sendrecv", "");
        let answered = answer_pcmu(&plain).unwrap();
        assert!(!answered.audio.rtcp_mux && !answered.sdp.contains("rtcp-mux"));
        assert_eq!(
            answered.audio.remote_rtcp,
            "198.51.100.1:49171".parse().unwrap()
        );
        let moved = OFFER.replace("a=sendrecv", "a=rtcp:50000");
        let answered = answer_pcmu(&moved).unwrap();
        assert_eq!(answered.audio.remote_rtcp.port(), 50000);
        let muxed = OFFER.replace("a=sendrecv", "a=rtcp-mux");
        let answered = answer_pcmu(&muxed).unwrap();
        assert!(answered.audio.rtcp_mux);
        assert_eq!(answered.audio.remote_rtcp, answered.audio.remote_rtp);
        assert!(parse(&answered.sdp).media[0].rtcp_mux, "mux is answered");
    }

    #[test]
    fn our_muxed_offer_is_read_back_muxed_only_when_the_answer_agrees() {
        let mut ours = local(vec![Codec::Pcmu]);
        ours.rtcp_mux = true;
        let offer_sdp = parse(&offer(&ours));
        assert!(offer_sdp.media[0].rtcp_mux);
        let their_answer = answer(&offer_sdp, &local(vec![Codec::Pcmu])).unwrap();
        let agreed = read_answer(&parse(&their_answer.sdp), &ours).unwrap();
        assert!(agreed.rtcp_mux);
        let plain_answer = their_answer.sdp.replace("a=rtcp-mux\r\n", "");
        let agreed = read_answer(&parse(&plain_answer), &ours).unwrap();
        assert!(!agreed.rtcp_mux);
        assert_eq!(agreed.remote_rtcp.port(), 30001);
    }

    #[test]
    fn static_payload_type_without_rtpmap_is_understood() {
        let answer = answer(&parse(OFFER), &local(vec![Codec::Pcma])).unwrap();
        assert_eq!(
            (answer.audio.codec, answer.audio.payload_type),
            (Codec::Pcma, 8)
        );
    }

    #[test]
    fn no_common_codec_is_a_typed_error() {
        let offer = OFFER.replace("111 0 8 101", "111 101");
        assert_eq!(answer_pcmu(&offer), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn sendonly_offer_is_answered_recvonly() {
        let offer = OFFER.replace("a=sendrecv", "a=sendonly");
        let answer = answer_pcmu(&offer).unwrap();
        assert_eq!(answer.audio.direction, Direction::RecvOnly);
        assert!(answer.sdp.contains("a=recvonly\r\n"));
    }

    #[test]
    fn rejected_and_extra_streams_get_port_zero() {
        let offer = OFFER.replace(
            "m=audio 49170",
            "m=video 5002 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\nm=audio 49170",
        );
        let answer = answer_pcmu(&offer).unwrap();
        let sdp = parse(&answer.sdp);
        let ports: Vec<u16> = sdp.media.iter().map(|m| m.port).collect();
        assert_eq!(
            ports,
            [0, 0, 30000],
            "one m= line per offered stream, in order"
        );
    }

    #[test]
    fn stream_without_connection_address_is_an_error() {
        let offer = OFFER.replace("c=IN IP4 198.51.100.1\r\n", "");
        assert_eq!(answer_pcmu(&offer), Err(SdpError::MissingConnection));
    }

    #[test]
    fn our_offer_round_trips_through_an_answer() {
        let ours = local(vec![Codec::Opus, Codec::Pcmu]);
        let offer_sdp = parse(&offer(&ours));
        let mut theirs = local(vec![Codec::Pcmu]);
        theirs.address = "198.51.100.9".parse().unwrap();
        theirs.port = 40000;
        let their_answer = answer(&offer_sdp, &theirs).unwrap();
        let agreed = read_answer(&parse(&their_answer.sdp), &ours).unwrap();
        assert_eq!(agreed.codec, Codec::Pcmu);
        assert_eq!(agreed.telephone_event, Some(101));
        assert_eq!(agreed.remote_rtp, "198.51.100.9:40000".parse().unwrap());
    }
}

#[cfg(test)]
#[path = "answer_events_tests.rs"]
mod events_tests;

#[cfg(test)]
#[path = "answer_srtp_tests.rs"]
mod srtp_tests;
