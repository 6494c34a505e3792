//! Answering a new offer inside an established call (RFC 3264 section 8): a re-INVITE that puts
//! the call on hold (`a=sendonly`, `a=inactive`, or the old-style `c=IN IP4 0.0.0.0` of RFC 2543),
//! takes it off hold, or only refreshes the session.
//!
//! The codec, ports and addresses agreed at the start stay as they were: the media core cannot
//! change codec mid-call, so only the direction of our previous answer is rewritten (RFC 3264
//! section 6.1: we send only if they receive, and receive only if they send). The `o=` version
//! goes up by one whenever the answer changes and stays the same when it does not (section 8:
//! a refresh that repeats the offer gets the same answer, version and all).

use super::{Direction, SdpError, SessionDescription};

/// Our answer to an offer made in an established call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reanswer {
    /// The answer body (the previous one when nothing changed).
    pub sdp: String,
    /// Our direction for the audio stream now.
    pub direction: Direction,
    /// Our direction in the previous answer, so the call learns only of changes.
    pub previous_direction: Direction,
    /// Whether the body differs from the previous answer (its `o=` version was bumped).
    pub changed: bool,
}

/// The direction an offer asks of its audio stream, reading a connection address of
/// `0.0.0.0` (or `::`) as "do not send to me" — hold as RFC 2543 wrote it (RFC 3264 section
/// 8.4). An offer without a usable audio stream is read as `inactive`.
pub fn offered_direction(offer: &SessionDescription) -> Direction {
    let Some(media) = offer
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
    else {
        return Direction::Inactive;
    };
    let direction = media
        .direction
        .or(offer.direction)
        .unwrap_or(Direction::SendRecv);
    let held_old_style = media
        .connection
        .or(offer.connection)
        .is_some_and(|a| a.is_unspecified());
    match (held_old_style, direction.sends()) {
        (false, _) => direction,
        (true, true) => Direction::SendOnly,
        (true, false) => Direction::Inactive,
    }
}

/// Rewrites `previous` (our last answer or offer in this dialog) to answer `offer`: the audio
/// stream's direction attribute follows the offer, and the `o=` version is bumped if anything
/// changed. Fails only when `previous` is not an SDP we can read back.
pub fn reanswer(previous: &str, offer: &SessionDescription) -> Result<Reanswer, SdpError> {
    let ours = SessionDescription::parse(previous.as_bytes())?;
    let previous_direction = ours
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
        .and_then(|m| m.direction.or(ours.direction))
        .unwrap_or(Direction::SendRecv);
    let direction = Direction::answer_to(offered_direction(offer), Direction::SendRecv);
    let mut body = String::with_capacity(previous.len() + 8);
    let mut origin = None;
    let mut in_audio = false;
    let mut wrote_direction = false;
    for line in previous.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio && !wrote_direction {
                push_line(&mut body, &format!("a={}", direction.as_str()));
            }
            in_audio = m.starts_with("audio ") && !m.starts_with("audio 0 ");
            wrote_direction = false;
        }
        if line.starts_with("o=") {
            origin = Some(body.len());
            push_line(&mut body, line);
            continue;
        }
        let is_direction = line
            .strip_prefix("a=")
            .is_some_and(|a| Direction::parse(a).is_some());
        if is_direction {
            if in_audio {
                push_line(&mut body, &format!("a={}", direction.as_str()));
                wrote_direction = true;
            }
            // A session-level direction would contradict the stream's; it is dropped.
            continue;
        }
        push_line(&mut body, line);
    }
    if in_audio && !wrote_direction {
        push_line(&mut body, &format!("a={}", direction.as_str()));
    }
    if body == normalised(previous) {
        return Ok(Reanswer {
            sdp: previous.to_owned(),
            direction,
            previous_direction,
            changed: false,
        });
    }
    let start = origin.ok_or_else(|| SdpError::Malformed {
        line: 2,
        reason: "our previous SDP has no o= line".to_owned(),
    })?;
    let end = body[start..].find("\r\n").map_or(body.len(), |i| start + i);
    let bumped = bump_version(&body[start..end]).ok_or_else(|| SdpError::Malformed {
        line: 2,
        reason: "our previous o= line has no numeric version".to_owned(),
    })?;
    body.replace_range(start..end, &bumped);
    Ok(Reanswer {
        sdp: body,
        direction,
        previous_direction,
        changed: true,
    })
}

fn push_line(body: &mut String, line: &str) {
    body.push_str(line);
    body.push_str("\r\n");
}

/// `previous` with CRLF line ends and no blank lines, as [`reanswer`] writes bodies.
fn normalised(previous: &str) -> String {
    let mut body = String::with_capacity(previous.len());
    for line in previous
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
    {
        push_line(&mut body, line);
    }
    body
}

/// `o=<user> <id> <version> <rest>` with the version one higher (wrapping, RFC 4566 leaves
/// the width to us).
fn bump_version(origin: &str) -> Option<String> {
    let value = origin.strip_prefix("o=")?;
    let mut parts = value.splitn(4, ' ');
    let (user, id, version, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version: u64 = version.parse().ok()?;
    Some(format!("o={user} {id} {} {rest}", version.wrapping_add(1)))
}

#[cfg(test)]
#[path = "reanswer_tests.rs"]
mod tests;
