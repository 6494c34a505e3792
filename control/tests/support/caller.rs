//! A caller for calls whose media the test plays itself: sipp carries the signalling (offering
//! the test's own RTP port for media, with `tests/sipp/uac_workflow_call.xml`) while
//! [`caller_media`] answers the edge's RTP with silence, presses keys (RFC 4733) on request and
//! notes what it hears.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Runs sipp once: it dials `number` on the edge offering `rtp_port` (the test's) for media,
/// and waits for the edge's BYE. Returns its exit code.
pub async fn sipp(target: SocketAddr, number: &str, rtp_port: u16) -> i32 {
    sipp_scenario(target, number, rtp_port, "uac_workflow_call.xml").await
}

/// [`sipp`] with another scenario of `tests/sipp/` that offers `[rtp_port]` the same way.
pub async fn sipp_scenario(
    target: SocketAddr,
    number: &str,
    rtp_port: u16,
    scenario_file: &str,
) -> i32 {
    let work = tempfile::tempdir().expect("temp dir");
    let mut command = sipp_dialling(target, number, scenario_file);
    command
        .args(["-key", "rtp_port", &rtp_port.to_string()])
        .args(["-timeout", "60s", "-nostdin", "-trace_err"]);
    run_sipp(command, &work, Duration::from_secs(90)).await
}

/// Runs sipp once with `scenario_file` of `tests/sipp/` against `target`, dialling `number`,
/// on SIP and media ports of its own (a previous run's retransmissions must not reach this
/// one), with `files` (name, bytes: the pcaps the scenario plays) in its working directory.
/// Returns its exit code.
pub async fn sipp_with_media(
    target: SocketAddr,
    number: &str,
    scenario_file: &str,
    files: &[(&str, &[u8])],
) -> i32 {
    let work = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in files {
        std::fs::write(work.path().join(name), bytes).expect("file for sipp written");
    }
    let mut command = sipp_dialling(target, number, scenario_file);
    command.args(["-mp", &free_udp_port().to_string()]).args([
        "-timeout",
        "60s",
        "-nostdin",
        "-trace_err",
        "-trace_msg",
    ]);
    run_sipp(command, &work, Duration::from_secs(90)).await
}

/// sipp running `scenario_file` of `tests/sipp/` once, dialling `number` at `target` from
/// 127.0.0.1 on a SIP port of its own.
fn sipp_dialling(target: SocketAddr, number: &str, scenario_file: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sipp");
    command
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-s", number, &target.to_string()])
        .args(["-m", "1", "-i", "127.0.0.1"])
        .args(["-p", &free_udp_port().to_string()]);
    command
}

/// A sipp UAS on 127.0.0.1 (a trunk the edge dials) running `scenario` from `tests/sipp/` with
/// `args` (`-m`, `-mp`, ...) until `timeout`, in a work directory of its own: the process (killed
/// on drop), the directory, and its SIP port.
pub fn sipp_uas(
    scenario: &str,
    args: &[&str],
    timeout: &str,
) -> (tokio::process::Child, tempfile::TempDir, u16) {
    let work = tempfile::tempdir().expect("temp dir");
    let port = free_udp_port();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let child = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(path)
        .args(["-p", &port.to_string(), "-i", "127.0.0.1"])
        .args(args)
        .args(["-timeout", timeout, "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    (child, work, port)
}

/// A UDP port free on 127.0.0.1 when asked.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `command` (sipp) in `work` within `limit`; on failure prints what sipp logged there.
async fn run_sipp(
    mut command: tokio::process::Command,
    work: &tempfile::TempDir,
    limit: Duration,
) -> i32 {
    let output = tokio::time::timeout(
        limit,
        command.current_dir(work.path()).kill_on_drop(true).output(),
    )
    .await
    .expect("sipp finishes in time")
    .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    let code = output.status.code().unwrap_or(-1);
    if code != 0 {
        for entry in std::fs::read_dir(work.path()).expect("sipp dir").flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                eprintln!("--- {}:\n{text}", entry.path().display());
            }
        }
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    }
    code
}

/// G.711 µ-law to linear.
pub fn ulaw(byte: u8) -> i32 {
    let b = !byte;
    let magnitude = ((i32::from(b & 0x0f) << 3) + 0x84) << ((b >> 4) & 7);
    if b & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }
}

pub fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// When each packet of the flow's audio arrived (epoch ms) and whether it carried speech.
pub type Heard = Arc<Mutex<Vec<(i64, bool)>>>;

/// [`caller_media`] on a new socket on 127.0.0.1: the RTP port for the caller to offer, what
/// it hears, and where its key presses go.
pub async fn caller_media_on_loopback() -> (u16, Heard, watch::Sender<Option<u8>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("rtp socket");
    let rtp_port = socket.local_addr().expect("addr").port();
    let heard: Heard = Arc::default();
    let (press, pressed) = watch::channel(None);
    caller_media(socket, heard.clone(), pressed);
    (rtp_port, heard, press)
}

/// The caller's side of the media: answers the edge's RTP with 20 ms of µ-law silence per
/// packet, presses the digit sent on `press` (RFC 4733: three updates, three end packets), and
/// notes every packet it hears.
pub fn caller_media(socket: UdpSocket, heard: Heard, mut press: watch::Receiver<Option<u8>>) {
    tokio::spawn(async move {
        let ssrc = 0x5eed_u32;
        let (mut seq, mut ts) = (1u16, 0u32);
        let mut edge: Option<SocketAddr> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut buf = [0u8; 2048];
        let packet = |seq: u16, ts: u32, pt: u8, marker: bool, payload: &[u8]| {
            let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(payload);
            p
        };
        loop {
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { return };
                    edge.get_or_insert(from);
                    if n > 12 && buf[1] & 0x7f == 0 {
                        let payload = &buf[12..n];
                        let level = payload.iter().map(|b| ulaw(*b).abs()).sum::<i32>()
                            / payload.len() as i32;
                        heard.lock().expect("heard").push((epoch_ms(), level > 300));
                    }
                }
                _ = tick.tick() => {
                    let Some(to) = edge else { continue };
                    let silence = packet(seq, ts, 0, false, &[0xff; 160]);
                    let _ = socket.send_to(&silence, to).await;
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
                changed = press.changed() => {
                    if changed.is_err() { return }
                    let Some(digit) = *press.borrow_and_update() else { continue };
                    let Some(to) = edge else { continue };
                    let start = ts;
                    for (i, (end, duration)) in [(false, 160u16), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)].into_iter().enumerate() {
                        let d = duration.to_be_bytes();
                        let event = [digit, if end { 0x8a } else { 0x0a }, d[0], d[1]];
                        let _ = socket.send_to(&packet(seq, start, 101, i == 0, &event), to).await;
                        seq = seq.wrapping_add(1);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ts = ts.wrapping_add(640);
                }
            }
        }
    });
}
