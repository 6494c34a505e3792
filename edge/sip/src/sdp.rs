//! SDP (RFC 4566): the session descriptions that ride in INVITE and 200 OK bodies, parsed just
//! far enough to negotiate one audio stream.
//!
//! The parser is small and tolerant: it keeps the lines offer/answer needs (`v`, `o`, `s`, `c`,
//! `m`, and the `rtpmap`, `fmtp`, `ptime` and direction attributes) and skips the rest, but a
//! line that is not `x=value`, or a broken `m=`, `c=` or `rtpmap`, is a typed [`SdpError`],
//! never a panic. The negotiation itself (RFC 3264) lives in [`answer`](mod@answer), new
//! offers in an established call (hold, resume, refresh) in [`reanswer`](mod@reanswer), and
//! SDES keys for SRTP (`a=crypto`, RFC 4568) in [`crypto`](mod@crypto), and those of our own
//! offers in [`srtp_offer`](mod@srtp_offer).

pub mod answer;
pub mod crypto;
pub mod reanswer;
pub mod srtp_offer;

pub use answer::{answer, offer, read_answer, Answer, Codec, LocalMedia, NegotiatedAudio};
pub use crypto::{redact_crypto, CryptoAttribute, KeyMaterial, SrtpKeys, SrtpPolicy, SrtpSuite};
pub use reanswer::{offered_direction, reanswer, Reanswer};
pub use srtp_offer::{answer_keys, secure_offer, OfferedKeys, SrtpAnswerError};

use std::net::IpAddr;

use thiserror::Error;

/// Why an SDP body could not be parsed or answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// A line is broken; `line` counts from 1.
    #[error("SDP line {line}: {reason}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is not UTF-8.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The description has no usable audio stream.
    #[error("no audio stream offered")]
    NoAudio,
    /// No offered codec is one we can use: the caller answers 488 Not Acceptable Here.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// The chosen stream has no c= line, at media or session level.
    #[error("audio stream has no connection address")]
    MissingConnection,
    /// SRTP is required (by the trunk or the inbound policy) and the offer has no `RTP/SAVP`
    /// audio stream: 488.
    #[error("SRTP is required and the offer has no RTP/SAVP audio stream")]
    SrtpRequired,
    /// The offer's audio is only `RTP/SAVP` and SRTP is disabled here: 488 (RFC 3264 section
    /// 6: we cannot accept a stream whose transport we do not speak).
    #[error("the offer's audio is SRTP only (RTP/SAVP) and SRTP is disabled")]
    SrtpDisabled,
    /// `RTP/SAVP` offered with no `a=crypto` line we can use (suites AES_CM_128_HMAC_SHA1_80
    /// and AEAD_AES_128_GCM, no MKI, no session parameters): 488.
    #[error("no usable a=crypto line (AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM)")]
    NoCommonCrypto,
}

/// The media direction attribute (RFC 3264 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways (the default).
    SendRecv,
    /// The describer only sends.
    SendOnly,
    /// The describer only receives.
    RecvOnly,
    /// Neither (e.g. on hold both ways).
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `sendrecv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// Does the describer send?
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Does the describer receive?
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The direction to answer an offered one with, given what we would like (RFC 3264
    /// section 6.1): we send only if they receive, and receive only if they send.
    pub fn answer_to(offered: Self, wanted: Self) -> Self {
        match (
            wanted.sends() && offered.receives(),
            wanted.receives() && offered.sends(),
        ) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }
}

/// An `a=rtpmap` line: payload type → encoding/clock-rate[/channels].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The RTP payload type number.
    pub payload_type: u8,
    /// The encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The channel count, when given.
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The media type: `audio`, `video`, ...
    pub media: String,
    /// The transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// The format list (payload type numbers for RTP), in preference order.
    pub formats: Vec<String>,
    /// The media-level connection address, if any.
    pub connection: Option<IpAddr>,
    /// The `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// The `a=fmtp` lines as (payload type, parameters).
    pub fmtps: Vec<(u8, String)>,
    /// The `a=ptime` value in milliseconds.
    pub ptime: Option<u32>,
    /// The media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=rtcp-mux` (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
    /// `a=rtcp:<port>` (RFC 3605): RTCP on another port than RTP + 1.
    pub rtcp_port: Option<u16>,
    /// The `a=crypto` lines we can use (RFC 4568), in the offerer's order of preference; at
    /// most [`MAX_CRYPTOS`] are kept.
    pub cryptos: Vec<CryptoAttribute>,
    /// How many `a=crypto` lines the stream had, usable or not (an answer must have one).
    pub crypto_lines: usize,
}

/// The most usable `a=crypto` lines kept per stream: enough for every suite, with and without
/// a lifetime, twice over; a peer writing hundreds costs a counter, not a list.
pub const MAX_CRYPTOS: usize = 8;

impl MediaDescription {
    /// The rtpmap for a payload type, if declared.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The fmtp parameters for a payload type, if declared.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, p)| p.as_str())
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` value, verbatim.
    pub origin: String,
    /// The `s=` value.
    pub session_name: String,
    /// The session-level connection address, if any.
    pub connection: Option<IpAddr>,
    /// The session-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// The media sections, in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body (CRLF or LF line ends).
    pub fn parse(bytes: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?;
        let mut sdp = Self {
            origin: String::new(),
            session_name: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut seen_version = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let raw = raw.trim_end();
            if raw.is_empty() {
                continue;
            }
            let malformed = |reason: &str| SdpError::Malformed {
                line,
                reason: reason.to_owned(),
            };
            let (kind, value) = match raw.split_once('=') {
                Some((k, v)) if k.len() == 1 && k.bytes().all(|b| b.is_ascii_lowercase()) => (k, v),
                _ => return Err(malformed("expected `x=value`")),
            };
            if !seen_version {
                if kind != "v" || value.trim() != "0" {
                    return Err(malformed("must start with v=0"));
                }
                seen_version = true;
                continue;
            }
            match kind {
                "o" => sdp.origin = value.to_owned(),
                "s" => sdp.session_name = value.to_owned(),
                "m" => {
                    sdp.media.push(parse_media(value).ok_or_else(|| {
                        malformed("expected `m=<media> <port> <proto> <fmt> ...`")
                    })?)
                }
                "c" => {
                    let address = parse_connection(value)
                        .ok_or_else(|| malformed("expected `c=IN IP4|IP6 <address>`"))?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(address),
                        None => sdp.connection = Some(address),
                    }
                }
                "a" => parse_attribute(&mut sdp, value).map_err(malformed)?,
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::Malformed {
                line: 1,
                reason: "empty description".to_owned(),
            });
        }
        Ok(sdp)
    }
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut parts = value.split_whitespace();
    let media = parts.next()?.to_owned();
    let port = parts.next()?.split('/').next()?.parse().ok()?;
    let proto = parts.next()?.to_owned();
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() {
        return None;
    }
    Some(MediaDescription {
        media,
        port,
        proto,
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        rtcp_mux: false,
        rtcp_port: None,
        cryptos: Vec::new(),
        crypto_lines: 0,
    })
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_whitespace();
    let (net, family, address) = (parts.next()?, parts.next()?, parts.next()?);
    if net != "IN" {
        return None;
    }
    // A multicast address may carry /ttl[/count]; the address is what precedes it.
    let address: IpAddr = address.split('/').next()?.parse().ok()?;
    match (family, address) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(address),
        _ => None,
    }
}

fn parse_attribute(sdp: &mut SessionDescription, value: &str) -> Result<(), &'static str> {
    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
    if let Some(direction) = Direction::parse(name) {
        match sdp.media.last_mut() {
            Some(m) => m.direction = Some(direction),
            None => sdp.direction = Some(direction),
        }
        return Ok(());
    }
    let Some(media) = sdp.media.last_mut() else {
        return Ok(());
    };
    match name {
        "rtpmap" => {
            let map = parse_rtpmap(arg).ok_or("expected `a=rtpmap:<pt> <name>/<rate>[/<ch>]`")?;
            media.rtpmaps.push(map);
        }
        "fmtp" => {
            let (pt, params) = arg
                .split_once(' ')
                .ok_or("expected `a=fmtp:<pt> <params>`")?;
            let pt = pt
                .parse()
                .map_err(|_| "fmtp payload type is not a number")?;
            media.fmtps.push((pt, params.trim().to_owned()));
        }
        // Tolerated when odd (some phones write `20.0`): a bad ptime only loses the hint.
        "ptime" => media.ptime = arg.trim().split('.').next().and_then(|p| p.parse().ok()),
        "rtcp-mux" => media.rtcp_mux = true,
        // A line we cannot use is skipped: another may do (RFC 4568 section 5.1.1).
        "crypto" => {
            media.crypto_lines = media.crypto_lines.saturating_add(1);
            if media.cryptos.len() < MAX_CRYPTOS {
                media.cryptos.extend(CryptoAttribute::parse(arg));
            }
        }
        // Only the port is used; a bad value falls back to RTP + 1, like a missing one.
        "rtcp" => {
            media.rtcp_port = arg
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .filter(|p| *p != 0)
        }
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, encoding) = arg.trim().split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type: pt.parse().ok()?,
        encoding: name.to_owned(),
        clock_rate,
        channels,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Our side as most answer tests want it: these `codecs` at 203.0.113.5:30000, send and
    /// receive, Opus at 111, telephone-event at 101, 20 ms, no rtcp-mux.
    pub(crate) fn local(codecs: Vec<Codec>) -> LocalMedia {
        LocalMedia {
            codecs,
            address: "203.0.113.5".parse().unwrap(),
            port: 30000,
            direction: Direction::SendRecv,
            session_id: 42,
            opus_payload_type: 111,
            telephone_event_payload_type: 101,
            ptime: 20,
            rtcp_mux: false,
            srtp: SrtpPolicy::Disabled,
        }
    }

    /// The answer to `offer` from a side that speaks only PCMU, as [`local`] has it.
    pub(crate) fn answer_pcmu(offer: &str) -> Result<Answer, SdpError> {
        answer(&parse(offer), &local(vec![Codec::Pcmu]))
    }

    /// `text` parsed, which a test's own SDP always does.
    pub(crate) fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text.as_bytes()).unwrap()
    }

    pub(crate) const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n\
s=-\r\n\
c=IN IP4 198.51.100.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 111 0 8 101\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=rtcp:49171 IN IP4 198.51.100.1\r\n\
a=x-unknown:whatever\r\n\
a=sendrecv\r\n";

    #[test]
    fn parses_an_offer() {
        let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.connection, Some("198.51.100.1".parse().unwrap()));
        let audio = &sdp.media[0];
        assert_eq!(audio.port, 49170);
        assert_eq!(audio.formats, ["111", "0", "8", "101"]);
        assert_eq!(audio.rtpmap(111).map(|m| m.channels), Some(Some(2)));
        assert_eq!(audio.fmtp(101), Some("0-16"));
        assert_eq!(audio.ptime, Some(20));
        assert_eq!(audio.direction, Some(Direction::SendRecv));
        assert_eq!((audio.rtcp_mux, audio.rtcp_port), (false, Some(49171)));
        let muxed = OFFER.replace("a=sendrecv", "a=rtcp-mux\r\na=sendrecv");
        let muxed = SessionDescription::parse(muxed.as_bytes()).unwrap();
        assert!(muxed.media[0].rtcp_mux);
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let sdp = OFFER.replace("a=ptime:20", "c=IN IP6 2001:db8::7\r\na=ptime:20");
        let sdp = SessionDescription::parse(sdp.as_bytes()).unwrap();
        assert_eq!(
            sdp.media[0].connection,
            Some("2001:db8::7".parse().unwrap())
        );
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        for (bad, line) in [
            ("garbage", 1),
            ("v=1\r\n", 1),
            ("v=0\r\nm=audio port RTP/AVP 0\r\n", 2),
            ("v=0\r\nm=audio 5000 RTP/AVP\r\n", 2),
            ("v=0\r\nc=IN IP4 not-an-ip\r\n", 2),
            ("v=0\r\nc=IN IP6 192.0.2.1\r\n", 2),
            ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n", 3),
            ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=fmtp:x y\r\n", 3),
        ] {
            assert!(
                matches!(
                    SessionDescription::parse(bad.as_bytes()),
                    Err(SdpError::Malformed { line: l, .. }) if l == line
                ),
                "{bad:?}"
            );
        }
        assert_eq!(SessionDescription::parse(&[0xff]), Err(SdpError::NotUtf8));
    }

    #[test]
    fn truncated_sdp_never_panics() {
        for end in 0..OFFER.len() {
            let _ = SessionDescription::parse(&OFFER.as_bytes()[..end]);
        }
    }

    #[test]
    fn direction_answers_follow_rfc_3264() {
        use Direction::*;
        for (offered, answered) in [
            (SendRecv, SendRecv),
            (SendOnly, RecvOnly),
            (RecvOnly, SendOnly),
            (Inactive, Inactive),
        ] {
            assert_eq!(Direction::answer_to(offered, SendRecv), answered);
        }
        assert_eq!(Direction::answer_to(SendRecv, RecvOnly), RecvOnly);
        assert_eq!(Direction::answer_to(RecvOnly, RecvOnly), Inactive);
    }
}
