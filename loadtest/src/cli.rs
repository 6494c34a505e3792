//! The command line around the library — read the scenario (file and flags), load what the
//! caller says, run the calls with live progress, print the headline figures, write the JSON and
//! HTML reports, and exit non-zero when a `--fail-if` threshold is crossed. Both the
//! `freya-loadtest` binary and `freya loadtest` run it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::audio::Utterance;
use crate::failover::{DevInfo, FailoverReport, KillPlan};
use crate::gate::Threshold;
use crate::onset::OnsetConfig;
use crate::runner::{run, RunPlan};
use crate::scenario::ScenarioSettings;
use crate::summary::Summary;
use crate::uac::{CallConfig, MediaOptions, TalkerConfig};
use crate::{report, sipp};
use anyhow::{bail, Context};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Real SIP calls with real audio against a Freya edge (or any SIP UAS), measured.
#[derive(Debug, Parser)]
#[command(name = "freya-loadtest", version)]
struct Cli {
    /// A TOML scenario file; flags override its settings.
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    settings: ScenarioSettings,
    /// Write every figure (and every call) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Fail (exit 1) when a figure crosses a threshold, e.g. `v2v_p95_ms>800` (repeatable).
    #[arg(long = "fail-if")]
    fail_if: Vec<Threshold>,
    /// Sample CPU and RSS of this process (the edge) from /proc (repeatable).
    #[arg(long = "edge-pid")]
    edge_pids: Vec<u32>,
    /// Read the edge's own inter-departure histogram from this `/metrics` URL before and after
    /// the run, e.g. `http://127.0.0.1:8081/metrics` (repeatable, one per edge).
    #[arg(long = "edge-metrics")]
    edge_metrics: Vec<String>,
    /// SIGKILL one edge this many seconds into the run, and report the failover (the edge of
    /// `--kill-pid`, or the last edge of `--dev-json`).
    #[arg(long = "kill-one-at")]
    kill_one_at: Option<f64>,
    /// The edge process `--kill-one-at` kills.
    #[arg(long = "kill-pid")]
    kill_pid: Option<u32>,
    /// `freya dev`'s `dev.json`: the edges (ids, pids, SIP and HTTP addresses) and the API, to
    /// watch the killed edge's detection and its calls' `edge_lost` ends.
    #[arg(long = "dev-json")]
    dev_json: Option<PathBuf>,
    /// With `--dev-json`: send new calls only to edges every edge's `GET /cluster` shows alive
    /// and not draining (as a carrier fed by the cluster's view would), e.g. through a rolling
    /// restart.
    #[arg(long = "follow-cluster")]
    follow_cluster: bool,
    /// Also run the same call pattern with sipp, to compare its cost with ours.
    #[arg(long)]
    compare_sipp: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The command line parsed as `T`, or the exit code after clap printed why not: 2 for an error
/// (on stderr), success for `--help` and `--version` (on stdout).
pub(crate) fn parse_args<T: Parser>(
    args: impl IntoIterator<Item = OsString>,
) -> Result<T, ExitCode> {
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Runs the command line with `args` (the first is the program name) and returns its exit
/// code: 0 all good, 1 a `--fail-if` threshold crossed, 2 an error.
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match parse_args::<Cli>(args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match real_main(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<bool> {
    let settings = match &cli.scenario {
        Some(path) => ScenarioSettings::from_file(path)?.overridden_by(cli.settings.clone()),
        None => cli.settings.clone(),
    };
    let scenario = settings.validate().context("while reading the scenario")?;
    let turns: Vec<Utterance> = scenario
        .turns
        .iter()
        .map(|spec| Utterance::from_spec(spec))
        .collect::<Result<_, _>>()
        .context("while loading what the caller says")?;
    if turns.iter().any(|t| t.samples.is_empty()) {
        bail!("a caller turn is silent after trimming; check its level");
    }
    let call = CallConfig {
        target: scenario.target,
        number: scenario.number.clone(),
        caller: scenario.caller.clone(),
        codec: scenario.codec.codec(),
        media_ip: scenario.local_ip,
        hold: scenario.duration,
        hangup: scenario.hangup,
        callee_grace: Duration::from_secs(5),
        setup_timeout: Duration::from_secs(32),
        bye_timeout: Duration::from_secs(4),
        turns: Arc::from(turns),
        talker: TalkerConfig {
            first_turn_after: scenario.first_turn,
            reply_timeout: scenario.reply_timeout,
            pause_after_reply: scenario.pause_after_reply,
            barge_in_after: scenario.barge_in_after,
            ..TalkerConfig::default()
        },
        onset: OnsetConfig {
            threshold_dbfs: scenario.threshold_dbfs,
            ..OnsetConfig::default()
        },
        late_after: Duration::from_millis(60),
        received_audio: None,
        conversation_events: None,
        media: MediaOptions {
            dtmf: scenario.dtmf.clone(),
            ..MediaOptions::default()
        },
    };
    let plan = RunPlan {
        call,
        local_sip: SocketAddr::new(scenario.local_ip, scenario.sip_port),
        calls: scenario.calls,
        concurrency: scenario.concurrency,
        rate: scenario.rate,
        ramp_up: scenario.ramp_up,
        max_run: scenario.max_run,
        edge_pids: cli.edge_pids.clone(),
        edge_metrics: cli.edge_metrics.clone(),
        progress: !cli.quiet,
        targets: scenario.targets.clone(),
        kill: kill_plan(&cli)?,
        follow: followed_cluster(&cli)?,
    };
    let scenario_json = serde_json::to_value(&scenario).context("while recording the scenario")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the tokio runtime")?;
    let summary = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        run(plan, scenario_json, cancel).await
    })?;
    print_summary(&summary);
    if cli.compare_sipp {
        let comparison =
            sipp::compare(&scenario, summary.self_cpu_ms_per_call).context("while running sipp")?;
        println!("{comparison}");
    }
    if let Some(path) = &cli.json {
        report::write_json(&summary, path)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        report::write_html(&summary, path)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    let mut passed = true;
    for threshold in &cli.fail_if {
        if let Some(value) = threshold.crossed(&summary)? {
            eprintln!("FAIL: {threshold} (measured {value:.2})");
            passed = false;
        }
    }
    Ok(passed)
}

/// The cluster to follow, when `--follow-cluster` asks for it.
fn followed_cluster(cli: &Cli) -> anyhow::Result<Option<DevInfo>> {
    if !cli.follow_cluster {
        return Ok(None);
    }
    let path = cli
        .dev_json
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--follow-cluster needs --dev-json"))?;
    DevInfo::read(path)
        .with_context(|| format!("while reading {}", path.display()))
        .map(Some)
}

/// The edge to kill mid-run, when `--kill-one-at` asks for one.
fn kill_plan(cli: &Cli) -> anyhow::Result<Option<KillPlan>> {
    let Some(at) = cli.kill_one_at else {
        return Ok(None);
    };
    let dev = cli
        .dev_json
        .as_deref()
        .map(|path| {
            DevInfo::read(path).with_context(|| format!("while reading {}", path.display()))
        })
        .transpose()?;
    KillPlan::new(at, cli.kill_pid, dev).map(Some)
}

fn print_failover(f: &FailoverReport) {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.1}{unit}"));
    println!(
        "failover: killed {} (pid {}) at {:.1} s, detected at {}; calls up on it {}",
        f.killed_edge.as_deref().unwrap_or("edge"),
        f.killed_pid,
        f.killed_at_s,
        opt(f.detected_at_s, " s"),
        f.calls_up_on_killed_edge
    );
    println!(
        "          failed calls started before the kill {}, before detection {}, after detection {}",
        f.failed_started_before_kill,
        f.failed_started_before_detection,
        f.failed_started_after_detection
    );
    println!(
        "          edge_lost calls {} of {} it had recorded up (stamped by the control plane {} after the kill), none open {} after it",
        f.edge_lost_calls.map_or("-".to_owned(), |n| n.to_string()),
        f.recorded_calls_up_at_kill
            .map_or("-".to_owned(), |n| n.to_string()),
        opt(f.edge_lost_stamped_after_ms, " ms"),
        opt(f.all_edge_lost_after_ms, " ms")
    );
}

fn print_summary(s: &Summary) {
    println!(
        "calls {}  ok {}  failed {} {:?}  redirected {}  peak active {}  wall {:.1} s  setups/s {:.1}",
        s.calls,
        s.succeeded,
        s.failed,
        s.failures,
        s.redirects,
        s.peak_active,
        s.wall_secs,
        s.setup_rate_per_sec
    );
    for (name, d) in [
        ("setup", &s.setup_ms),
        ("first audio", &s.first_audio_ms),
        ("voice-to-voice", &s.v2v_ms),
        ("barge-in", &s.barge_in_ms),
        ("jitter", &s.jitter_ms),
        ("inter-arrival", &s.interarrival_ms),
        ("send lateness", &s.send_lateness_ms),
    ] {
        println!(
            "{name:>15} ms: n={:<6} p50 {:>8.2}  p95 {:>8.2}  p99 {:>8.2}  max {:>8.2}",
            d.count, d.p50, d.p95, d.p99, d.max
        );
    }
    println!(
        "RTP sent {}  received {}  lost {} ({:.3} %)  late {}  turns {}  replies {}",
        s.rtp_sent, s.rtp_received, s.rtp_lost, s.loss_pct, s.rtp_late, s.turns_spoken, s.replies
    );
    if let Some(cpu) = s.edge_cpu_mean_pct {
        println!(
            "edge CPU {cpu:.1} % of a core (mean while busy), RSS peak {:.1} MiB",
            s.edge_rss_peak_mib.unwrap_or(0.0)
        );
    }
    if let Some(d) = &s.edge_departure {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v}"));
        println!(
            "edge inter-departure deviation (its /metrics): {} packets, p50 <= {} ms, p99 <= {} ms, \
             p99.9 <= {} ms, {:.3} % over 5 ms",
            d.packets,
            ms(d.p50_ms_at_most),
            ms(d.p99_ms_at_most),
            ms(d.p999_ms_at_most),
            d.over_5ms_pct.unwrap_or(0.0)
        );
    }
    if let Some(ms) = s.self_cpu_ms_per_call {
        println!("load generator CPU {ms:.1} ms per call");
    }
    if let Some(f) = &s.failover {
        print_failover(f);
    }
}
