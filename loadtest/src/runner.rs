//! Drives a scenario: launches calls at the scenario's rate (with its ramp-up) while keeping at
//! most `concurrency` up, gathers their reports, samples the edge's CPU and memory once a
//! second, shows live progress, and stops at the run's time bound whatever happens.
//!
//! Each call is one tokio task (no thread per call); reports come back over a bounded channel
//! that the collector drains as they end (a full channel makes a finishing call wait, which is
//! harmless: it has nothing left to time).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::edge_metrics::{self, Buckets, EdgeDeparture};
use crate::failover::{DevInfo, Failover, KillPlan, Targets};
use crate::follow::ClusterFollower;
use crate::procstat::{self, ProcReading};
use crate::scenario::launch_offset;
use crate::summary::{CallRecord, Distribution, Summary, TimelinePoint};
use crate::uac::{place_call, CallConfig, SipEndpoint};

/// How a run is driven (the call pattern around a [`CallConfig`]).
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Every call's settings.
    pub call: CallConfig,
    /// Local SIP address to bind.
    pub local_sip: SocketAddr,
    /// Total calls.
    pub calls: u64,
    /// Most concurrent calls.
    pub concurrency: usize,
    /// Calls per second after ramp-up.
    pub rate: f64,
    /// Ramp-up time.
    pub ramp_up: Duration,
    /// Hard bound on the run.
    pub max_run: Duration,
    /// Edge processes to sample.
    pub edge_pids: Vec<u32>,
    /// The edges' `/metrics` URLs, read before and after the run.
    pub edge_metrics: Vec<String>,
    /// Draw a live progress bar on the terminal.
    pub progress: bool,
    /// Edges the calls are spread over in turn (empty: `call.target` alone).
    pub targets: Vec<SocketAddr>,
    /// One edge to kill mid-run.
    pub kill: Option<KillPlan>,
    /// Send new calls only to edges the cluster says take them (`--follow-cluster`).
    pub follow: Option<DevInfo>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The SIP socket could not be bound.
    #[error("cannot bind the SIP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the plan to its end (or its time bound, or `cancel`) and summarizes it.
pub async fn run(
    plan: RunPlan,
    scenario: serde_json::Value,
    cancel: CancellationToken,
) -> Result<Summary, RunError> {
    let run_cancel = cancel.child_token();
    let endpoint = SipEndpoint::bind(plan.local_sip, run_cancel.clone())
        .await
        .map_err(|source| RunError::Bind {
            addr: plan.local_sip,
            source,
        })?;
    let metrics_client = reqwest::Client::new();
    let departures_before = read_departures(&metrics_client, &plan.edge_metrics).await;
    let start = Instant::now();
    let self_before = procstat::read_self();
    let active = Arc::new(AtomicUsize::new(0));
    let (reports, mut inbox) = mpsc::channel::<CallRecord>(256);
    let bar = progress_bar(&plan);
    let targets = Arc::new(Targets::new(if plan.targets.is_empty() {
        vec![plan.call.target]
    } else {
        plan.targets.clone()
    }));
    let follower = plan
        .follow
        .clone()
        .map(|dev| ClusterFollower::spawn(dev, targets.clone(), &run_cancel));
    let failover = plan.kill.clone().map(|kill| {
        Arc::new(Failover::spawn(
            kill,
            start,
            targets.clone(),
            run_cancel.clone(),
        ))
    });

    let launcher = tokio::spawn(launch(
        plan.clone(),
        Spread {
            targets,
            failover: failover.clone(),
        },
        endpoint,
        active.clone(),
        reports,
        run_cancel.clone(),
        start,
    ));
    let deadline = tokio::time::sleep(plan.max_run);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut records: Vec<CallRecord> = Vec::new();
    let mut timeline = Vec::new();
    let mut sampler = Sampler::new(&plan.edge_pids);
    loop {
        tokio::select! {
            record = inbox.recv() => match record {
                Some(record) => {
                    bar.inc(1);
                    records.push(record);
                    if records.len().is_multiple_of(10) {
                        bar.set_message(status_line(&records, active.load(Ordering::Relaxed)));
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let t = start.elapsed().as_secs_f64();
                let (edge_cpu_pct, edge_rss_mib, self_cpu_pct) = sampler.sample();
                timeline.push(TimelinePoint {
                    t,
                    active: active.load(Ordering::Relaxed),
                    edge_cpu_pct,
                    edge_rss_mib,
                    self_cpu_pct,
                    ..TimelinePoint::default()
                });
                bar.set_message(status_line(&records, active.load(Ordering::Relaxed)));
            }
            _ = &mut deadline => {
                tracing::warn!("run time bound reached; cancelling calls still up");
                run_cancel.cancel();
            }
            _ = cancel.cancelled() => run_cancel.cancel(),
        }
    }
    let _ = launcher.await;
    if let Some(follower) = &follower {
        follower.stop().await;
    }
    if let Some(failover) = &failover {
        failover.settle().await;
    }
    run_cancel.cancel();
    bar.finish_with_message(status_line(&records, 0));
    // Starts, answers and failures per second are known only once every report is in.
    rebuild_counts(&mut timeline, &records);
    let self_cpu = match (self_before, procstat::read_self()) {
        (Some(a), Some(b)) => Some(b.cpu_secs - a.cpu_secs),
        _ => None,
    };
    records.sort_by(|a, b| a.started_s.total_cmp(&b.started_s));
    let wall = start.elapsed().as_secs_f64();
    let failover_report = failover.as_ref().map(|f| f.report(&records));
    let mut summary = Summary::build(scenario, wall, records, timeline, self_cpu);
    summary.failover = failover_report;
    let departures_after = read_departures(&metrics_client, &plan.edge_metrics).await;
    if let (Some(before), Some(after)) = (departures_before, departures_after) {
        summary.edge_departure = Some(EdgeDeparture::of(&after.since(&before)));
    }
    Ok(summary)
}

/// The edges' departure histograms summed, or `None` (with a warning) when none was asked for
/// or one cannot be read.
async fn read_departures(client: &reqwest::Client, urls: &[String]) -> Option<Buckets> {
    if urls.is_empty() {
        return None;
    }
    match edge_metrics::scrape_all(client, urls).await {
        Ok(buckets) => Some(buckets),
        Err(e) => {
            tracing::warn!(error = %e, "the edge's inter-departure figures are left out");
            None
        }
    }
}

/// Where each call goes: the targets in turn, and the failover watcher told of timeouts.
struct Spread {
    targets: Arc<Targets>,
    failover: Option<Arc<Failover>>,
}

async fn launch(
    plan: RunPlan,
    spread: Spread,
    endpoint: SipEndpoint,
    active: Arc<AtomicUsize>,
    reports: mpsc::Sender<CallRecord>,
    cancel: CancellationToken,
    start: Instant,
) {
    let slots = Arc::new(Semaphore::new(plan.concurrency));
    let call = Arc::new(plan.call);
    for n in 0..plan.calls {
        let at = start + launch_offset(n, plan.rate, plan.ramp_up);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
        };
        let call = match spread.targets.pick(n) {
            Some(target) if target != call.target => Arc::new(CallConfig {
                target,
                ..(*call).clone()
            }),
            _ => call.clone(),
        };
        let (endpoint, active, reports, cancel) = (
            endpoint.clone(),
            active.clone(),
            reports.clone(),
            cancel.clone(),
        );
        let (targets, failover) = (spread.targets.clone(), spread.failover.clone());
        active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let started_s = start.elapsed().as_secs_f64();
            let report = place_call(&endpoint, &call, &cancel).await;
            if let (Some(failover), Some(crate::uac::CallFailure::Timeout)) =
                (&failover, &report.failure)
            {
                failover.saw_timeout(start, call.target, &targets);
            }
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            let _ = reports.send(CallRecord { started_s, report }).await;
        });
    }
}

/// Fills each timeline second with the calls started, answered and failed in it.
fn rebuild_counts(timeline: &mut [TimelinePoint], records: &[CallRecord]) {
    for p in timeline.iter_mut() {
        p.started = 0;
        p.answered = 0;
        p.failed = 0;
    }
    let bucket = |t: f64| timeline.iter().position(|p| t < p.t);
    let mut add = Vec::new();
    for r in records {
        if let Some(i) = bucket(r.started_s) {
            add.push((i, 0));
        }
        if let Some(setup) = r.report.setup_ms {
            if let Some(i) = bucket(r.started_s + setup / 1000.0) {
                add.push((i, 1));
            }
        }
        if r.report.failure.is_some() {
            let end = r.started_s
                + r.report.setup_ms.unwrap_or(0.0) / 1000.0
                + r.report.talk_ms.unwrap_or(0.0) / 1000.0;
            if let Some(i) = bucket(end) {
                add.push((i, 2));
            }
        }
    }
    for (i, what) in add {
        if let Some(p) = timeline.get_mut(i) {
            match what {
                0 => p.started += 1,
                1 => p.answered += 1,
                _ => p.failed += 1,
            }
        }
    }
}

fn progress_bar(plan: &RunPlan) -> ProgressBar {
    let bar = ProgressBar::new(plan.calls);
    if !plan.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} done  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn status_line(records: &[CallRecord], active: usize) -> String {
    let failed = records.iter().filter(|r| !r.report.succeeded()).count();
    let tail = &records[records.len().saturating_sub(500)..];
    let setup = Distribution::of(tail.iter().filter_map(|r| r.report.setup_ms).collect());
    let v2v = Distribution::of(
        tail.iter()
            .flat_map(|r| r.report.v2v_ms.iter().copied())
            .collect(),
    );
    format!(
        "active {active}  failed {failed}  setup p95 {:.1} ms  v2v p95 {:.0} ms",
        setup.p95, v2v.p95
    )
}

/// Once-a-second CPU/RSS readings of the edge process(es) and of ourselves.
struct Sampler {
    pids: Vec<u32>,
    last: Vec<Option<ProcReading>>,
    last_self: Option<ProcReading>,
}

impl Sampler {
    fn new(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            last: pids.iter().map(|&p| procstat::read(p)).collect(),
            last_self: procstat::read_self(),
        }
    }

    /// (edge CPU %, edge RSS MiB, our CPU %) since the previous call.
    fn sample(&mut self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let mut cpu = None;
        let mut rss = None;
        for (pid, last) in self.pids.iter().zip(self.last.iter_mut()) {
            let now = procstat::read(*pid);
            if let (Some(a), Some(b)) = (last.as_ref(), now.as_ref()) {
                *cpu.get_or_insert(0.0) += procstat::cpu_percent(a, b);
                *rss.get_or_insert(0.0) += b.rss_mib;
            }
            *last = now;
        }
        let now_self = procstat::read_self();
        let self_cpu = match (self.last_self.as_ref(), now_self.as_ref()) {
            (Some(a), Some(b)) => Some(procstat::cpu_percent(a, b)),
            _ => None,
        };
        self.last_self = now_self;
        (cpu, rss, self_cpu)
    }
}
