//! What a cross-edge bridge adds: two mesh endpoints on loopback (127.0.0.1 and 127.0.0.2, with
//! certificates from one dev CA) carry `CALLS` bridged calls, each sending a 20 ms frame every
//! 20 ms in both directions for `SECONDS`, as a leg's relayed RTP would. Each frame carries its
//! send time; the receiving side's delivery to the leg's queue gives the transit time, which is
//! the latency the bridge adds (the receiving leg's jitter buffer is there with or without the
//! mesh). CPU is the process's user + system time over the run (both edges' mesh work), per
//! bridged call. Prints p50/p99/max transit and CPU per call; asserts nothing.
//!
//! `cargo run --release -p freya-edge --example mesh_bridge -- [CALLS] [SECONDS]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use freya_edge::mesh::tls::dev_pki;
use freya_edge::mesh::{
    AudioFrame, AudioHeader, LegKey, Mesh, MeshInbound, MeshSettings, PayloadKind,
};
use nix::sys::resource::{getrusage, UsageWho};
use tokio::sync::mpsc;

fn cpu_seconds() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    tv(usage.user_time()) + tv(usage.system_time())
}

/// Sends one direction of one call: a frame every 20 ms, its first 8 bytes the send time.
async fn talk(mesh: Mesh, peer: SocketAddr, key: LegKey, frames: u32, epoch: Instant) {
    let mut buf = Vec::with_capacity(512);
    let mut payload = [0x55u8; 160];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..frames {
        tick.tick().await;
        let sent = epoch.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        let frame = AudioFrame {
            header: AudioHeader {
                key,
                kind: PayloadKind::Pcmu,
                sequence: n as u16,
                timestamp: n * 160,
            },
            payload: &payload,
        };
        mesh.send_audio(peer, &frame, &mut buf);
    }
}

/// Receives one direction of one call; returns each frame's transit in microseconds.
async fn listen(mut rx: mpsc::Receiver<MeshInbound>, epoch: Instant, until: Instant) -> Vec<u64> {
    let mut transit = Vec::new();
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Some(inbound)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let now = epoch.elapsed().as_nanos() as u64;
        if let MeshInbound::Audio { payload, .. } = inbound {
            if let Some(stamp) = payload.get(..8) {
                let sent = u64::from_be_bytes(stamp.try_into().unwrap_or([0; 8]));
                transit.push(now.saturating_sub(sent) / 1_000);
            }
        }
    }
    transit
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: u32 = args.next().map_or(Ok(100), |a| a.parse())?;
    let seconds: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let pki = dev_pki("bench", &["edge-a", "edge-b"])?;
    let settings = MeshSettings::default();
    let (a, _) = Mesh::bind("127.0.0.1:0".parse()?, &pki[0], settings)?;
    let (b, _) = Mesh::bind("127.0.0.2:0".parse()?, &pki[1], settings)?;
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);

    // Connect once (the first frames of a real leg would wait for this too).
    let warm = LegKey {
        call: uuid::Uuid::now_v7(),
        leg: 0,
    };
    a.send_control(
        b_addr,
        &freya_edge::mesh::ControlMessage::Leave { key: warm },
    )
    .await?;
    b.send_control(
        a_addr,
        &freya_edge::mesh::ControlMessage::Leave { key: warm },
    )
    .await?;

    let frames = seconds * 50;
    let epoch = Instant::now();
    let until = epoch + Duration::from_secs(u64::from(seconds) + 2);
    let mut listeners = Vec::new();
    let mut talkers = Vec::new();
    for _ in 0..calls {
        let key = LegKey {
            call: uuid::Uuid::now_v7(),
            leg: 1,
        };
        let at_a = a.join(key, b_addr)?;
        let at_b = b.join(key, a_addr)?;
        listeners.push(tokio::spawn(listen(at_a, epoch, until)));
        listeners.push(tokio::spawn(listen(at_b, epoch, until)));
        talkers.push(tokio::spawn(talk(b.clone(), a_addr, key, frames, epoch)));
        talkers.push(tokio::spawn(talk(a.clone(), b_addr, key, frames, epoch)));
    }
    let cpu_start = cpu_seconds();
    let wall_start = Instant::now();
    for t in talkers {
        t.await?;
    }
    let cpu = cpu_seconds() - cpu_start;
    let wall = wall_start.elapsed().as_secs_f64();
    let mut transit = Vec::new();
    for l in listeners {
        transit.extend(l.await?);
    }
    transit.sort_unstable();
    let pct = |p: f64| transit[((transit.len() as f64 - 1.0) * p) as usize];
    let expected = u64::from(calls) * 2 * u64::from(frames);
    println!(
        "calls={calls} seconds={seconds} frames_expected={expected} frames_received={} dropped={}",
        transit.len(),
        a.counters()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            + b.counters()
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed)
    );
    if transit.is_empty() {
        anyhow::bail!("no frame arrived");
    }
    println!(
        "transit_us p50={} p99={} max={}",
        pct(0.50),
        pct(0.99),
        transit[transit.len() - 1]
    );
    println!(
        "cpu: {:.3} s over {:.1} s wall = {:.1}% of one core; per bridged call {:.3}% of one core",
        cpu,
        wall,
        100.0 * cpu / wall,
        100.0 * cpu / wall / f64::from(calls)
    );
    a.close();
    b.close();
    Ok(())
}
