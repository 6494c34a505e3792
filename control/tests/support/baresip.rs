//! baresip 1.0 (Debian's `baresip-core`) as a foreign SIP phone: a real SIP stack that nobody on
//! this project wrote, driven over its `ctrl_tcp` module (JSON in netstrings: commands such as
//! `dial`, `hold`, `resume`, `sndcode` and `hangup` go in, call events come out). Its SIP trace
//! (`-s`) is kept, so a test can read what baresip sent and received.
//!
//! The phone plays a silent WAV file at the call's audio rate (baresip's `aufile` source needs
//! the codec's rate) and plays what it hears into `aubridge`, which needs no sound card.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Where Debian installs baresip and its modules.
const BINARY: &str = "/usr/bin/baresip";
const MODULES: &str = "/usr/lib/baresip/modules";

/// How long a command or an awaited event may take before the test fails (a hang guard).
const LIMIT: Duration = Duration::from_secs(15);

/// The audio the phone offers, as baresip names it in an account's `audio_codecs`.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    Pcmu,
    Opus,
    /// A codec the edge does not speak: its offer must be refused.
    G722,
}

impl Codec {
    fn account_codecs(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000/1",
            Codec::Opus => "opus/48000/2",
            Codec::G722 => "G722/16000/1",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Codec::Pcmu => "g711.so",
            Codec::Opus => "opus.so",
            Codec::G722 => "g722.so",
        }
    }

    /// The sample rate and channels `aufile` must read at for this codec.
    fn source_format(self) -> (u32, u16) {
        match self {
            Codec::Pcmu => (8000, 1),
            Codec::Opus => (48000, 2),
            Codec::G722 => (16000, 1),
        }
    }
}

/// How a phone is set up beyond its codec.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub codec: Codec,
    /// The account's `mediaenc` (`srtp-mand`: SRTP with SDES keys or no call, `RTP/SAVP`),
    /// with baresip's `srtp` module loaded.
    pub mediaenc: Option<&'static str>,
    /// Play a sine of this frequency after two seconds of silence (so that it does not talk
    /// over a greeting), instead of silence throughout.
    pub tone_hz: Option<u32>,
    /// Keep what the phone decodes from the far end (`sndfile` module): see
    /// [`Baresip::received_audio`].
    pub keep_received_audio: bool,
    /// SIP over TLS too, on [`Baresip::sip_tls_addr`], with the edge's test certificate
    /// (`localhost`, 127.0.0.1) and its test CA trusted; the account's transport is TLS.
    pub tls: bool,
    /// Answer incoming calls at once (`answermode=auto`).
    pub auto_answer: bool,
}

impl Setup {
    /// A phone offering `codec`, plain RTP, playing silence.
    pub fn plain(codec: Codec) -> Self {
        Self {
            codec,
            mediaenc: None,
            tone_hz: None,
            keep_received_audio: false,
            tls: false,
            auto_answer: false,
        }
    }
}

/// Whether baresip is installed; tests that need it say so and stop when it is not.
pub fn available() -> bool {
    std::path::Path::new(BINARY).exists()
}

/// Whether baresip is here to test with: a test without it says so and passes, but under CI
/// (`CI` set) its absence fails the test.
pub fn installed() -> bool {
    if available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "baresip is missing: deploy/test.sh installs it (package baresip-core)"
    );
    eprintln!("SKIPPED: baresip is not installed (apt-get install baresip-core)");
    false
}

/// One running baresip phone, killed when dropped.
pub struct Baresip {
    child: Child,
    control: TcpStream,
    unread: Vec<u8>,
    /// Events received while waiting for something else, in order.
    events: Vec<serde_json::Value>,
    trace: PathBuf,
    /// The phone's SIP address (UDP and TCP).
    pub sip_addr: SocketAddr,
    /// Its SIP over TLS address: baresip listens one port above [`Self::sip_addr`].
    pub sip_tls_addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Baresip {
    /// Starts a phone on 127.0.0.1 that offers only `codec`. The ports are picked free, but
    /// another process may take one before baresip binds it (baresip also binds a TLS port of
    /// its own choosing): then it exits, and it is started again on other ports.
    pub async fn start(codec: Codec) -> Self {
        Self::start_with(Setup::plain(codec)).await
    }

    /// Starts a phone set up as `setup` says (see [`start`](Self::start)).
    pub async fn start_with(setup: Setup) -> Self {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(setup).await {
                Ok(phone) => return phone,
                Err(output) if attempts < 5 && output.contains("Address already in use") => {
                    continue
                }
                Err(output) => panic!("baresip did not start; its output:\n{output}"),
            }
        }
    }

    /// One start; `Err` with baresip's output when it exited or never opened its control port.
    async fn try_start(setup: Setup) -> Result<Self, String> {
        let codec = setup.codec;
        let dir = tempfile::tempdir().expect("baresip dir");
        let silence = dir.path().join("silence.wav");
        let mut wav = silent_wav(codec.source_format(), 60);
        if let Some(hz) = setup.tone_hz {
            tone(&mut wav, codec.source_format(), hz);
        }
        std::fs::write(&silence, wav).expect("silence.wav");
        let mut extra = String::new();
        if setup.mediaenc.is_some() {
            extra.push_str("module srtp.so\n");
        }
        if setup.keep_received_audio {
            extra.push_str(&format!(
                "module sndfile.so\nsnd_path {}\n",
                dir.path().display()
            ));
        }
        if setup.tls {
            let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../edge/src/sip/transport/tls/testdata");
            let read = |name: &str| std::fs::read(certs.join(name)).expect("test certificate");
            let certificate = dir.path().join("cert.pem");
            std::fs::write(&certificate, [read("edge.pem"), read("edge.key")].concat())
                .expect("cert.pem");
            extra.push_str(&format!(
                "sip_certificate {}\nsip_cafile {}\n",
                certificate.display(),
                certs.join("ca.pem").display()
            ));
        }
        let (sip_port, control_port) = (free_port(), free_port());
        let config = format!(
            "sip_listen 127.0.0.1:{sip_port}\n\
             audio_player aubridge,nil\n\
             audio_alert aubridge,nil\n\
             audio_source aufile,{silence}\n\
             module_path {MODULES}\n\
             module {codec_module}\n\
             module aufile.so\n\
             module aubridge.so\n\
             module ctrl_tcp.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             ctrl_tcp_listen 127.0.0.1:{control_port}\n\
             rtp_ports 40000-44999\n\
             {extra}",
            silence = silence.display(),
            codec_module = codec.module(),
        );
        std::fs::write(dir.path().join("config"), config).expect("baresip config");
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:phone@127.0.0.1:{}>;regint=0;answermode={};audio_codecs={}{}\n",
                if setup.tls {
                    format!("{};transport=tls", sip_port + 1)
                } else {
                    sip_port.to_string()
                },
                if setup.auto_answer { "auto" } else { "manual" },
                codec.account_codecs(),
                setup
                    .mediaenc
                    .map(|m| format!(";mediaenc={m}"))
                    .unwrap_or_default()
            ),
        )
        .expect("baresip accounts");
        let trace = dir.path().join("trace.log");
        let log = std::fs::File::create(&trace).expect("trace file");
        let mut child = Command::new(BINARY)
            .arg("-f")
            .arg(dir.path())
            .args(["-n", "127.0.0.1", "-s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("trace file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("baresip starts");
        let control_addr: SocketAddr = ([127, 0, 0, 1], control_port).into();
        let output = || std::fs::read_to_string(&trace).unwrap_or_default();
        let started = Instant::now();
        let control = loop {
            match TcpStream::connect(control_addr).await {
                Ok(stream) => break stream,
                Err(e) => {
                    if matches!(child.try_wait(), Ok(Some(_))) || started.elapsed() > LIMIT {
                        let _ = child.kill().await;
                        return Err(format!("(control port: {e})\n{}", output()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
            }
        };
        Ok(Self {
            child,
            control,
            unread: Vec::new(),
            events: Vec::new(),
            trace,
            sip_addr: ([127, 0, 0, 1], sip_port).into(),
            sip_tls_addr: ([127, 0, 0, 1], sip_port + 1).into(),
            dir,
        })
    }

    /// Runs one menu command; `Err` carries baresip's complaint.
    pub async fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
        let body =
            serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        let framed = format!("{}:{body},", body.len());
        self.control
            .write_all(framed.as_bytes())
            .await
            .expect("baresip control write");
        loop {
            let message = self.next_message().await;
            if message["response"] == true {
                let data = message["data"].as_str().unwrap_or_default().to_owned();
                return if message["ok"] == true {
                    Ok(data)
                } else {
                    Err(data)
                };
            }
            self.events.push(message);
        }
    }

    /// Dials `uri` (`sip:+15550001@127.0.0.1:5060`).
    pub async fn dial(&mut self, uri: &str) {
        self.command("dial", uri)
            .await
            .unwrap_or_else(|e| panic!("baresip dial {uri}: {e}\n{}", self.trace()));
    }

    /// Waits for the call event `kind` (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...), seen before or
    /// arriving now, and takes it (with the events before it) off the queue.
    pub async fn event(&mut self, kind: &str) -> serde_json::Value {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(at) = self.events.iter().position(|e| e["type"] == kind) {
                let event = self.events.remove(at);
                self.events.drain(..at);
                return event;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next_message()).await {
                Ok(message) => self.events.push(message),
                Err(_) => panic!(
                    "baresip never reported {kind}; events: {:?}\ntrace:\n{}",
                    self.events,
                    self.trace()
                ),
            }
        }
    }

    /// Everything baresip printed: its SIP trace (every message sent and received) and logs,
    /// without colour codes.
    pub fn trace(&self) -> String {
        let raw = std::fs::read(&self.trace).unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).replace('\0', "");
        strip_colours(&text)
    }

    /// The SIP messages in the trace, each with its direction line (`UDP a -> b`) first.
    pub fn sip_messages(&self) -> Vec<String> {
        // Each message follows a line ending in `#`; baresip's status line, rewritten in place
        // with carriage returns, may share that line.
        self.trace()
            .split("#\n")
            .skip(1)
            .filter(|block| {
                ["UDP ", "TCP ", "TLS "]
                    .iter()
                    .any(|t| block.starts_with(t))
            })
            .map(|block| block.trim_end().to_owned())
            .collect()
    }

    /// The first SIP message of the trace that starts with `start` and carries SDP.
    pub fn sdp_of(&self, start: &str) -> String {
        let messages = self.sip_messages();
        messages
            .iter()
            .filter_map(|m| m.split_once('\n').map(|(_, message)| message))
            .find(|m| m.starts_with(start) && m.contains("\nm=audio"))
            .unwrap_or_else(|| panic!("a {start} with SDP in {messages:#?}"))
            .to_owned()
    }

    /// The 16-bit samples the phone decoded from the far end (its `sndfile` dump, `*-dec.wav`),
    /// once the call has ended; empty without [`Setup::keep_received_audio`].
    pub fn received_audio(&self) -> Vec<i16> {
        self.dumped_audio("-dec.wav")
    }

    /// The 16-bit samples the phone encoded and sent (its `sndfile` dump, `*-enc.wav`).
    pub fn sent_audio(&self) -> Vec<i16> {
        self.dumped_audio("-enc.wav")
    }

    fn dumped_audio(&self, suffix: &str) -> Vec<i16> {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return Vec::new();
        };
        let mut samples = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("dump") && name.ends_with(suffix) {
                let wav = std::fs::read(entry.path()).unwrap_or_default();
                samples.extend(
                    wav.get(44..)
                        .unwrap_or_default()
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
            }
        }
        samples
    }

    /// The names of the files in the phone's directory (its configuration and dumps).
    pub fn files(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the phone now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    async fn next_message(&mut self) -> serde_json::Value {
        loop {
            if let Some((message, used)) = netstring(&self.unread) {
                self.unread.drain(..used);
                return serde_json::from_slice(&message).expect("baresip sends JSON");
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .control
                .read(&mut chunk)
                .await
                .expect("baresip control read");
            assert!(n > 0, "baresip closed its control port:\n{}", self.trace());
            self.unread.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One `len:payload,` netstring off the front of `buf`, and how many bytes it took.
fn netstring(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let colon = buf.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    let end = colon + 1 + len;
    (buf.len() > end).then(|| (buf[colon + 1..end].to_vec(), end + 1))
}

fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// A port free on 127.0.0.1 for both UDP and TCP at the time of asking.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp port");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Overwrites the samples of `wav` (from [`silent_wav`]) after its first two seconds with a
/// sine of `hz` at a third of full scale, the same on every channel.
fn tone(wav: &mut [u8], (rate, channels): (u32, u16), hz: u32) {
    let frame = 2 * usize::from(channels);
    let chunks = wav[44..].chunks_exact_mut(frame).enumerate();
    for (i, sample) in chunks.skip(2 * rate as usize) {
        let t = i as f64 / f64::from(rate);
        let v = (10_000.0 * (2.0 * std::f64::consts::PI * f64::from(hz) * t).sin()) as i16;
        for channel in sample.chunks_exact_mut(2) {
            channel.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// `seconds` of 16-bit silence at `rate` with `channels`, as a WAV file.
fn silent_wav((rate, channels): (u32, u16), seconds: u32) -> Vec<u8> {
    let frame = 2 * u32::from(channels);
    let data_len = rate * frame * seconds;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * frame).to_le_bytes());
    wav.extend_from_slice(&(frame as u16).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}
