//! Failover under load: calls spread over several edges (`--target a,b,c`, round robin), one
//! edge killed mid-run (`--kill-one-at SECONDS`, SIGKILL to `--kill-pid` or to an edge named in
//! `freya dev`'s `dev.json`), and what the run saw of it.
//!
//! With `--dev-json`, the killed edge's peers are watched (`GET /cluster` on their HTTP
//! listeners) until every one reports it `down`: that is the detection. From then on the load
//! tester sends it no new call, as a carrier fed by the cluster's view would; without a
//! `dev.json` the first INVITE to it that times out does the same. The control plane's
//! `GET /v1/calls` is then read until none of the killed edge's calls is open: how many ended
//! `edge_lost`, and how long after the kill the last one did.
//!
//! The report's `failover` section sorts failed calls by when they started: before the kill,
//! between the kill and its detection (new calls sent to a dead edge), after the detection (the
//! figure that should be zero), and counts the calls that were up on the killed edge.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::summary::CallRecord;
use crate::uac::CallFailure;

/// The edges calls are spread over, and which of them the run no longer uses.
#[derive(Debug)]
pub struct Targets {
    list: Vec<SocketAddr>,
    dead: Vec<AtomicBool>,
}

impl Targets {
    /// Round robin over `list` (at least one address).
    pub fn new(list: Vec<SocketAddr>) -> Self {
        let dead = list.iter().map(|_| AtomicBool::new(false)).collect();
        Self { list, dead }
    }

    /// The edge for call `n`: the `n`th in turn, skipping edges known dead (all dead: the
    /// `n`th anyway, and the call fails as it would).
    pub fn pick(&self, n: u64) -> Option<SocketAddr> {
        let len = self.list.len();
        let start = usize::try_from(n % u64::try_from(len.max(1)).unwrap_or(1)).unwrap_or(0);
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| !self.dead[i].load(Ordering::Relaxed))
            .or((len > 0).then_some(start))
            .and_then(|i| self.list.get(i).copied())
    }

    /// No new call goes to `addr` any more.
    pub fn mark_dead(&self, addr: SocketAddr) {
        self.set_dead(addr, true);
    }

    /// New calls go to `addr` again (`dead` false) or no longer (`dead` true).
    pub fn set_dead(&self, addr: SocketAddr, dead: bool) {
        for (target, flag) in self.list.iter().zip(&self.dead) {
            if *target == addr {
                flag.store(dead, Ordering::Relaxed);
            }
        }
    }
}

/// One edge as `dev.json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct DevEdge {
    /// Its id (as `GET /cluster` names it).
    pub id: String,
    /// Its process.
    pub pid: u32,
    /// Where it takes SIP.
    pub sip_addr: SocketAddr,
    /// Its HTTP listener (`/cluster`).
    pub http_url: String,
}

/// What the run needs of `dev.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct DevInfo {
    /// The control plane's REST API.
    pub api_url: String,
    /// An API key of the demo workspace.
    pub api_key: String,
    /// Every edge of the setup.
    pub edges: Vec<DevEdge>,
}

impl DevInfo {
    /// Reads `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path)?;
        Ok(serde_json::from_slice(&text)?)
    }
}

/// Which edge to kill, when, and how to watch the aftermath.
#[derive(Debug, Clone)]
pub struct KillPlan {
    /// After the run's start.
    pub at: Duration,
    /// The process to SIGKILL.
    pub pid: u32,
    /// The killed edge as `dev.json` names it, when known.
    pub edge: Option<DevEdge>,
    /// The setup, when given: peers to watch and the control plane to ask.
    pub dev: Option<DevInfo>,
}

impl KillPlan {
    /// `pid` (or, without one, the last edge `dev.json` lists: never the first, which shares
    /// its process with the control plane) killed `at` seconds in.
    pub fn new(at: f64, pid: Option<u32>, dev: Option<DevInfo>) -> anyhow::Result<Self> {
        let edge = match (&dev, pid) {
            (Some(dev), Some(pid)) => dev.edges.iter().find(|e| e.pid == pid).cloned(),
            (Some(dev), None) => {
                anyhow::ensure!(
                    dev.edges.len() >= 2,
                    "dev.json lists fewer than two edges: nothing to kill but the control plane's own"
                );
                dev.edges.last().cloned()
            }
            (None, _) => None,
        };
        let pid = pid
            .or(edge.as_ref().map(|e| e.pid))
            .ok_or_else(|| anyhow::anyhow!("--kill-one-at needs --kill-pid or --dev-json"))?;
        anyhow::ensure!(at.is_finite() && at >= 0.0, "--kill-one-at must be seconds");
        Ok(Self {
            at: Duration::from_secs_f64(at),
            pid,
            edge,
            dev,
        })
    }
}

/// What the run saw of the kill (the report's `failover` section).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverReport {
    /// The process killed.
    pub killed_pid: u32,
    /// Its edge id, when known.
    pub killed_edge: Option<String>,
    /// Seconds after the run's start.
    pub killed_at_s: f64,
    /// When every peer reported it `down` (or, without `dev.json`, when an INVITE to it first
    /// timed out), seconds after the run's start.
    pub detected_at_s: Option<f64>,
    /// Calls answered by the killed edge and still up when it was killed.
    pub calls_up_on_killed_edge: usize,
    /// Failed calls by when they started: before the kill.
    pub failed_started_before_kill: usize,
    /// ... between the kill and its detection.
    pub failed_started_before_detection: usize,
    /// ... after the detection: new calls the cluster should have carried.
    pub failed_started_after_detection: usize,
    /// The killed edge's calls the control plane ended as `edge_lost`.
    pub edge_lost_calls: Option<usize>,
    /// The killed edge's calls the control plane had recorded as started by the kill and not
    /// ended by the edge before it: each must be among `edge_lost_calls`. (A call whose INVITE
    /// reached the edge but whose `call.started` had not been published when it died is
    /// unknown to the control plane, which cannot end it.)
    pub recorded_calls_up_at_kill: Option<usize>,
    /// From the kill until the load tester saw none of the killed edge's calls open at the
    /// control plane (asked only once the detection was seen), ms.
    pub all_edge_lost_after_ms: Option<f64>,
    /// From the kill to the latest `ended_at` the control plane stamped on the killed edge's
    /// `edge_lost` calls (the moment a peer's `down` report reached it), ms.
    pub edge_lost_stamped_after_ms: Option<f64>,
}

/// Times the aftermath of the kill, filled in as it happens.
#[derive(Debug, Default)]
struct Moments {
    killed_us: AtomicU64,
    detected_us: AtomicU64,
    edge_lost_ms: AtomicU64,
    edge_lost_calls: AtomicU64,
    recorded_up: AtomicU64,
    /// The kill, in ms since the epoch, and the latest `edge_lost` `ended_at`, the same.
    killed_epoch_ms: AtomicU64,
    latest_lost_epoch_ms: AtomicU64,
}

/// The kill and its watchers, running beside the calls.
pub struct Failover {
    plan: KillPlan,
    moments: Arc<Moments>,
    /// The watcher's thread, joined before the report (its own guard bounds it to a minute).
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Stops the watcher when the kill never came.
    stop: CancellationToken,
}

impl Failover {
    /// Kills the edge at its time, then watches for detection and the `edge_lost` ends,
    /// marking the edge dead in `targets` once detected.
    pub fn spawn(
        plan: KillPlan,
        start: Instant,
        targets: Arc<Targets>,
        cancel: CancellationToken,
    ) -> Self {
        let moments = Arc::new(Moments::default());
        // A thread and a runtime of its own: the call tasks keep the run's workers busy, and a
        // poll of the peers queued behind them would date the detection late.
        let stop = cancel.child_token();
        let (watched, watch_stop, watch_plan) = (moments.clone(), stop.clone(), plan.clone());
        let thread = std::thread::Builder::new()
            .name("failover-watch".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(watch(watch_plan, start, targets, watched, watch_stop))
                    }
                    Err(e) => tracing::warn!(error = %e, "no runtime for the failover watcher"),
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "no thread for the failover watcher"))
            .ok();
        Self {
            plan,
            moments,
            thread: std::sync::Mutex::new(thread),
            stop,
        }
    }

    /// Once the calls are over: waits for the watcher to see the detection and the killed
    /// edge's calls ended (a run may end before the control plane has ended them all), or
    /// stops it if the kill never came.
    pub async fn settle(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let Some(thread) = thread else { return };
        if self.moments.killed_us.load(Ordering::Relaxed) == 0 {
            self.stop.cancel();
        }
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }

    /// A call that timed out at `target` after the kill: without a cluster to watch, this is
    /// the detection.
    pub fn saw_timeout(&self, start: Instant, target: SocketAddr, targets: &Targets) {
        let killed = self.moments.killed_us.load(Ordering::Relaxed);
        if killed == 0 || self.plan.dev.is_some() {
            return;
        }
        targets.mark_dead(target);
        let now = micros(start.elapsed());
        let _ =
            self.moments
                .detected_us
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The report, from every call's record.
    pub fn report(&self, records: &[CallRecord]) -> FailoverReport {
        let secs = |us: u64| (us > 0).then(|| us as f64 / 1e6);
        let killed_at_s = secs(self.moments.killed_us.load(Ordering::Relaxed))
            .unwrap_or(self.plan.at.as_secs_f64());
        let detected_at_s = secs(self.moments.detected_us.load(Ordering::Relaxed));
        let victim_sip = self.plan.edge.as_ref().map(|e| e.sip_addr);
        let mut report = FailoverReport {
            killed_pid: self.plan.pid,
            killed_edge: self.plan.edge.as_ref().map(|e| e.id.clone()),
            killed_at_s,
            detected_at_s,
            ..FailoverReport::default()
        };
        for record in records {
            let r = &record.report;
            if let (Some(edge), Some(setup)) = (r.edge, r.setup_ms) {
                let answered_s = record.started_s + setup / 1000.0;
                let ended_s = answered_s + r.talk_ms.unwrap_or(0.0) / 1000.0;
                if Some(edge) == victim_sip && answered_s <= killed_at_s && ended_s >= killed_at_s {
                    report.calls_up_on_killed_edge += 1;
                }
            }
            if r.failure.is_none() || matches!(r.failure, Some(CallFailure::Cancelled)) {
                continue;
            }
            if record.started_s < killed_at_s {
                report.failed_started_before_kill += 1;
            } else if detected_at_s.is_none_or(|d| record.started_s < d) {
                report.failed_started_before_detection += 1;
            } else {
                report.failed_started_after_detection += 1;
            }
        }
        let lost_ms = self.moments.edge_lost_ms.load(Ordering::Relaxed);
        if lost_ms > 0 {
            report.all_edge_lost_after_ms = Some(lost_ms as f64 - 1.0);
            let (killed, latest) = (
                self.moments.killed_epoch_ms.load(Ordering::Relaxed),
                self.moments.latest_lost_epoch_ms.load(Ordering::Relaxed),
            );
            if killed > 0 && latest > 0 {
                report.edge_lost_stamped_after_ms = Some(latest as f64 - killed as f64);
            }
            let count = |n: &AtomicU64| usize::try_from(n.load(Ordering::Relaxed)).unwrap_or(0);
            report.edge_lost_calls = Some(count(&self.moments.edge_lost_calls));
            report.recorded_calls_up_at_kill = Some(count(&self.moments.recorded_up));
        }
        report
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

async fn watch(
    plan: KillPlan,
    start: Instant,
    targets: Arc<Targets>,
    moments: Arc<Moments>,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep_until((start + plan.at).into()) => {}
    }
    let Ok(pid) = i32::try_from(plan.pid) else {
        tracing::warn!(pid = plan.pid, "not a process id; nothing killed");
        return;
    };
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        tracing::warn!(pid, error = %e, "could not kill the edge");
        return;
    }
    let killed = Instant::now();
    moments
        .killed_epoch_ms
        .store(epoch_ms(std::time::SystemTime::now()), Ordering::Relaxed);
    moments
        .killed_us
        .store(micros(start.elapsed()), Ordering::Relaxed);
    eprintln!(
        "killed edge process {pid} at {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let (Some(dev), Some(edge)) = (plan.dev, plan.edge) else {
        return;
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_default();
    let peers: Vec<&DevEdge> = dev.edges.iter().filter(|e| e.id != edge.id).collect();
    let hang_guard = killed + Duration::from_secs(60);
    // Each peer is asked until it has said `down` once (a state is not taken back without a
    // new generation): detection is when the last of them has.
    let mut said_down = vec![false; peers.len()];
    while Instant::now() < hang_guard && !cancel.is_cancelled() {
        for (peer, said) in peers.iter().zip(said_down.iter_mut()) {
            if *said {
                continue;
            }
            // A peer that no longer lists it at all has forgotten a dead member: down too.
            let state = member_state(&http, &peer.http_url, &edge.id).await;
            *said = matches!(state.as_deref(), Some("down" | "absent"));
        }
        if said_down.iter().all(|&s| s) {
            targets.mark_dead(edge.sip_addr);
            moments
                .detected_us
                .store(micros(start.elapsed()), Ordering::Relaxed);
            eprintln!(
                "every peer reports {} down at {:.1} s",
                edge.id,
                start.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while Instant::now() < hang_guard && !cancel.is_cancelled() {
        let killed_ms = moments.killed_epoch_ms.load(Ordering::Relaxed);
        if let Some(calls) = calls_of(&http, &dev, &edge.id, killed_ms).await {
            if calls.open == 0 {
                moments
                    .latest_lost_epoch_ms
                    .store(calls.latest_ms, Ordering::Relaxed);
                let ms = killed.elapsed().as_millis();
                moments
                    .edge_lost_ms
                    .store(u64::try_from(ms).unwrap_or(u64::MAX) + 1, Ordering::Relaxed);
                moments.edge_lost_calls.store(calls.lost, Ordering::Relaxed);
                moments
                    .recorded_up
                    .store(calls.recorded_up, Ordering::Relaxed);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON body `request` answers with; `None` when it cannot be sent or read.
async fn json_of(request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
    request.send().await.ok()?.json().await.ok()
}

/// `id`'s state at the edge whose HTTP listener is `http_url` (its newest generation), `absent`
/// when that edge does not list it; `None` when the edge cannot be asked.
async fn member_state(http: &reqwest::Client, http_url: &str, id: &str) -> Option<String> {
    let report = json_of(http.get(format!("{http_url}/cluster"))).await?;
    report["members"]
        .as_array()?
        .iter()
        .filter(|m| m["id"] == id)
        .max_by_key(|m| m["generation"].as_u64().unwrap_or(0))
        .map_or(Some("absent".to_owned()), |m| {
            m["state"].as_str().map(str::to_owned)
        })
}

fn epoch_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the control plane holds of the killed edge's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LostCalls {
    /// Not ended yet.
    open: u64,
    /// Ended `edge_lost`.
    lost: u64,
    /// The latest `ended_at` of those, in ms since the epoch.
    latest_ms: u64,
    /// Recorded as started by the kill and not ended by the edge itself before it: the calls
    /// the control plane knew were up, each of which it must end `edge_lost`.
    recorded_up: u64,
}

impl LostCalls {
    /// Counts one call of the killed edge (`started_at`, `ended_at`, `end_reason` of its API
    /// record) against the kill at `killed_ms` (ms since the epoch).
    fn count(&mut self, call: &serde_json::Value, killed_ms: u64) {
        let at = |key: &str| {
            call[key]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .map(epoch_ms)
        };
        let started = at("started_at");
        let ended = at("ended_at");
        let lost = call["end_reason"] == "edge_lost";
        if ended.is_none() {
            self.open += 1;
        } else if lost {
            self.lost += 1;
            self.latest_ms = self.latest_ms.max(ended.unwrap_or(0));
        }
        // An end the edge itself recorded is before its death; `edge_lost` is stamped at the
        // report (after the kill) or at its last heartbeat (possibly before).
        let ended_by_itself = ended.is_some_and(|e| e < killed_ms) && !lost;
        if started.is_some_and(|s| s <= killed_ms) && !ended_by_itself {
            self.recorded_up += 1;
        }
    }
}

/// The killed edge `id`'s calls as the control plane holds them, over every page of the
/// workspace's calls; `None` when the control plane cannot be read.
async fn calls_of(
    http: &reqwest::Client,
    dev: &DevInfo,
    id: &str,
    killed_ms: u64,
) -> Option<LostCalls> {
    let mut calls = LostCalls::default();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{}/v1/calls?limit=200", dev.api_url);
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let page = json_of(http.get(url).bearer_auth(&dev.api_key)).await?;
        for call in page["data"].as_array()? {
            if call["edge_id"] == id {
                calls.count(call, killed_ms);
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Some(calls),
        }
    }
    Some(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_go_round_robin_and_skip_a_dead_edge() {
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:5062".parse().unwrap();
        let targets = Targets::new(vec![a, b, c]);
        let picked: Vec<_> = (0..6).filter_map(|n| targets.pick(n)).collect();
        assert_eq!(picked, vec![a, b, c, a, b, c]);
        targets.mark_dead(b);
        let picked: Vec<_> = (0..6).filter_map(|n| targets.pick(n)).collect();
        assert_eq!(picked, vec![a, c, c, a, c, c]);
        targets.mark_dead(a);
        targets.mark_dead(c);
        assert_eq!(
            targets.pick(1),
            Some(b),
            "all dead: the call fails as it would"
        );
        targets.set_dead(a, false);
        assert_eq!(targets.pick(1), Some(a), "back");
    }

    #[test]
    fn the_recorded_calls_up_at_the_kill_are_those_the_edge_did_not_end_itself() {
        let kill = humantime::parse_rfc3339("2026-12-07T10:00:10Z").map(epoch_ms);
        let kill = kill.expect("time");
        let call = |started: &str, ended: Option<&str>, reason: Option<&str>| serde_json::json!({"started_at": started, "ended_at": ended, "end_reason": reason});
        let mut calls = LostCalls::default();
        // Ended by its own record before the kill: not up.
        calls.count(
            &call(
                "2026-12-07T10:00:01Z",
                Some("2026-12-07T10:00:05Z"),
                Some("caller_hangup"),
            ),
            kill,
        );
        // Up at the kill, ended `edge_lost` by a peer's report after it.
        calls.count(
            &call(
                "2026-12-07T10:00:02Z",
                Some("2026-12-07T10:00:12Z"),
                Some("edge_lost"),
            ),
            kill,
        );
        // Up at the kill, ended `edge_lost` at the last heartbeat before it.
        calls.count(
            &call(
                "2026-12-07T10:00:03Z",
                Some("2026-12-07T10:00:09Z"),
                Some("edge_lost"),
            ),
            kill,
        );
        // Up at the kill and never ended: counted open, and up.
        calls.count(&call("2026-12-07T10:00:04Z", None, None), kill);
        assert_eq!(calls.recorded_up, 3);
        assert_eq!((calls.open, calls.lost), (1, 2));
        assert_eq!(
            calls.latest_ms,
            humantime::parse_rfc3339("2026-12-07T10:00:12Z")
                .map(epoch_ms)
                .expect("time")
        );
    }
}
