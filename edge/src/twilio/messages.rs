//! Twilio Media Streams messages: the JSON text frames of the stream's WebSocket. Twilio sends
//! `connected`, `start` (the stream and call ids, custom parameters, the media format), `media`
//! (base64 μ-law, 20 ms each), `dtmf`, `mark` (a label we sent, echoed once the audio before it
//! played) and `stop`; we send `media`, `mark` and `clear`. Twilio writes numbers as strings
//! (`"chunk": "3"`); both forms are read. Both directions serialize and parse, so the fake
//! Twilio of the tests speaks the same types. Sans-IO: text in, values out.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};

/// A message from Twilio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(crate) enum FromTwilio {
    Connected {
        #[serde(default)]
        protocol: String,
        #[serde(default)]
        version: String,
    },
    Start {
        #[serde(rename = "streamSid", default)]
        stream_sid: String,
        start: StreamStart,
    },
    Media {
        #[serde(rename = "streamSid", default)]
        stream_sid: String,
        media: InboundMedia,
    },
    Dtmf {
        #[serde(rename = "streamSid", default)]
        stream_sid: String,
        dtmf: Dtmf,
    },
    Mark {
        #[serde(rename = "streamSid", default)]
        stream_sid: String,
        mark: Mark,
    },
    Stop {
        #[serde(rename = "streamSid", default)]
        stream_sid: String,
    },
}

/// The `start` object: who the stream is for and what it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamStart {
    pub stream_sid: String,
    pub account_sid: String,
    pub call_sid: String,
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

/// The stream's audio format; Twilio's is always μ-law, 8000 Hz, mono.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MediaFormat {
    pub encoding: String,
    #[serde(deserialize_with = "number_or_string")]
    pub sample_rate: u64,
    #[serde(default = "one", deserialize_with = "number_or_string")]
    pub channels: u64,
}

fn one() -> u64 {
    1
}

impl MediaFormat {
    /// Whether this is the format the edge speaks on streams.
    pub(crate) fn is_mulaw_8k(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("audio/x-mulaw")
            && self.sample_rate == 8000
            && self.channels == 1
    }
}

/// One frame of caller audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InboundMedia {
    #[serde(default)]
    pub track: String,
    /// Frame counter, from 1.
    #[serde(deserialize_with = "number_or_string")]
    pub chunk: u64,
    /// Milliseconds since the stream started.
    #[serde(deserialize_with = "number_or_string")]
    pub timestamp: u64,
    /// Base64 μ-law.
    pub payload: String,
}

/// A key the caller pressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Dtmf {
    #[serde(default)]
    pub track: String,
    pub digit: String,
}

/// A label in the outgoing audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Mark {
    pub name: String,
}

/// A message to Twilio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(crate) enum ToTwilio {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        media: OutboundMedia,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        mark: Mark,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

/// Audio for the caller: base64 μ-law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboundMedia {
    pub payload: String,
}

/// Why a stream message is not usable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamMessageError {
    #[error("not a Media Streams message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("media payload is not base64")]
    Payload,
}

impl FromTwilio {
    /// Parses one text frame.
    pub(crate) fn parse(text: &str) -> Result<Self, StreamMessageError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The message's `event`, as Twilio names it.
    pub(crate) fn event(&self) -> &'static str {
        match self {
            FromTwilio::Connected { .. } => "connected",
            FromTwilio::Start { .. } => "start",
            FromTwilio::Media { .. } => "media",
            FromTwilio::Dtmf { .. } => "dtmf",
            FromTwilio::Mark { .. } => "mark",
            FromTwilio::Stop { .. } => "stop",
        }
    }
}

impl InboundMedia {
    /// The μ-law bytes of this frame.
    pub(crate) fn audio(&self) -> Result<Vec<u8>, StreamMessageError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|_| StreamMessageError::Payload)
    }
}

impl ToTwilio {
    /// A `media` message carrying `mulaw`.
    pub(crate) fn media(stream_sid: &str, mulaw: &[u8]) -> Self {
        ToTwilio::Media {
            stream_sid: stream_sid.to_owned(),
            media: OutboundMedia {
                payload: base64::engine::general_purpose::STANDARD.encode(mulaw),
            },
        }
    }

    /// The text frame.
    pub(crate) fn to_text(&self) -> String {
        // Plain structs of strings: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(u64),
        Text(String),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(n) => Ok(n),
        Wire::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilios_messages_parse_with_numbers_as_strings() {
        let start = FromTwilio::parse(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",
               "callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw",
               "sampleRate":8000,"channels":1},"customParameters":{"ticket":"t"}},"streamSid":"MZ1"}"#,
        )
        .expect("start");
        let FromTwilio::Start { start, .. } = start else {
            panic!("a start message");
        };
        assert_eq!(start.call_sid, "CA1");
        assert_eq!(start.custom_parameters["ticket"], "t");
        assert!(start.media_format.is_mulaw_8k());

        let media = FromTwilio::parse(
            r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2",
               "timestamp":"40","payload":"//8A"},"streamSid":"MZ1"}"#,
        )
        .expect("media");
        let FromTwilio::Media { media, .. } = media else {
            panic!("a media message");
        };
        assert_eq!((media.chunk, media.timestamp), (2, 40));
        assert_eq!(media.audio().expect("base64"), [0xff, 0xff, 0x00]);

        let dtmf = FromTwilio::parse(
            r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"7"}}"#,
        )
        .expect("dtmf");
        assert!(matches!(dtmf, FromTwilio::Dtmf { dtmf, .. } if dtmf.digit == "7"));
        let stop = FromTwilio::parse(
            r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
        )
        .expect("stop");
        assert!(matches!(stop, FromTwilio::Stop { .. }));
        assert!(matches!(
            FromTwilio::parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(FromTwilio::Connected { .. })
        ));
    }

    #[test]
    fn junk_and_bad_payloads_are_errors_not_panics() {
        assert!(FromTwilio::parse("not json").is_err());
        assert!(FromTwilio::parse(r#"{"event":"teleport"}"#).is_err());
        assert!(FromTwilio::parse(
            r#"{"event":"media","media":{"chunk":"x","timestamp":"1","payload":""}}"#
        )
        .is_err());
        let media = InboundMedia {
            track: String::new(),
            chunk: 1,
            timestamp: 0,
            payload: "%%%".into(),
        };
        assert!(media.audio().is_err());
    }

    #[test]
    fn our_messages_are_what_twilio_expects() {
        let media: serde_json::Value =
            serde_json::from_str(&ToTwilio::media("MZ1", &[0xff, 0x7f]).to_text()).expect("json");
        assert_eq!(
            media,
            serde_json::json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "/38="}})
        );
        let clear = ToTwilio::Clear {
            stream_sid: "MZ1".into(),
        };
        assert_eq!(clear.to_text(), r#"{"event":"clear","streamSid":"MZ1"}"#);
        let mark = ToTwilio::Mark {
            stream_sid: "MZ1".into(),
            mark: Mark {
                name: "agent-1".into(),
            },
        };
        assert_eq!(
            mark.to_text(),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"agent-1"}}"#
        );
    }
}
