//! `--compare-sipp`: the same call pattern (count, concurrency, rate, hold time) placed by
//! sipp's built-in UAC against the same target, with sipp's CPU time sampled from `/proc`, so
//! the cost of our own UAC is known against a reference generator. sipp's built-in scenario
//! sends no RTP, so its figure is a floor for signalling alone; ours carries audio both ways.

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procstat;
use crate::scenario::Scenario;

/// Why sipp could not be run or read.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    /// sipp is not installed or could not start.
    #[error("cannot start sipp (Debian package sip-tester): {0}")]
    Spawn(std::io::Error),
    /// A scratch file or port could not be had.
    #[error("sipp scratch space: {0}")]
    Io(std::io::Error),
}

/// What sipp did, next to what we did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SippComparison {
    /// The exact command run.
    pub command: String,
    /// sipp's exit status code.
    pub exit_code: Option<i32>,
    /// Successful calls, from sipp's statistics file.
    pub successful: Option<u64>,
    /// Failed calls, from sipp's statistics file.
    pub failed: Option<u64>,
    /// sipp's CPU time per call, milliseconds.
    pub sipp_cpu_ms_per_call: Option<f64>,
    /// Ours, for the same pattern.
    pub our_cpu_ms_per_call: Option<f64>,
    /// Wall time of the sipp run, seconds.
    pub wall_secs: f64,
}

impl fmt::Display for SippComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.2}"));
        write!(
            f,
            "sipp: `{}` → exit {:?}, ok {:?}, failed {:?}, {:.1} s; CPU per call: sipp {} ms (signalling only), \
freya-loadtest {} ms (signalling + RTP both ways + analysis)",
            self.command,
            self.exit_code,
            self.successful,
            self.failed,
            self.wall_secs,
            ms(self.sipp_cpu_ms_per_call),
            ms(self.our_cpu_ms_per_call)
        )
    }
}

/// Runs sipp with the scenario's pattern and reports on it.
pub fn compare(
    scenario: &Scenario,
    our_cpu_ms_per_call: Option<f64>,
) -> Result<SippComparison, SippError> {
    let dir = std::env::temp_dir().join(format!("freya-loadtest-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(SippError::Io)?;
    let stat_file: PathBuf = dir.join("stat.csv");
    let port = free_udp_port(scenario.local_ip).map_err(SippError::Io)?;
    // sipp takes whole calls per period: express the rate per 10 s to keep one decimal.
    let per_ten_secs = (scenario.rate * 10.0).round().max(1.0) as u64;
    let args: Vec<String> = vec![
        scenario.target.to_string(),
        "-sn".into(),
        "uac".into(),
        "-s".into(),
        scenario.number.clone(),
        "-i".into(),
        scenario.local_ip.to_string(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        scenario.calls.to_string(),
        "-l".into(),
        scenario.concurrency.to_string(),
        "-r".into(),
        per_ten_secs.to_string(),
        "-rp".into(),
        "10000".into(),
        "-d".into(),
        scenario.duration.as_millis().to_string(),
        "-timeout".into(),
        format!("{}s", scenario.max_run.as_secs().max(1)),
        "-nostdin".into(),
        "-trace_stat".into(),
        "-stf".into(),
        stat_file.display().to_string(),
        "-fd".into(),
        "1".into(),
    ];
    let command = format!("sipp {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new("sipp")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(SippError::Spawn)?;
    let pid = child.id();
    let mut last_cpu = None;
    let status = loop {
        if let Some(reading) = procstat::read(pid) {
            last_cpu = Some(reading.cpu_secs);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => break None,
        }
        if started.elapsed() > scenario.max_run + Duration::from_secs(10) {
            let _ = child.kill();
            break child.wait().ok();
        }
    };
    let stats = std::fs::read_to_string(&stat_file).unwrap_or_default();
    let successful = last_stat(&stats, "SuccessfulCall(C)");
    let failed = last_stat(&stats, "FailedCall(C)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(SippComparison {
        command,
        exit_code: status.and_then(|s| s.code()),
        successful,
        failed,
        sipp_cpu_ms_per_call: last_cpu.map(|c| 1000.0 * c / scenario.calls as f64),
        our_cpu_ms_per_call,
        wall_secs: started.elapsed().as_secs_f64(),
    })
}

/// The value of `column` in the last row of a sipp `-trace_stat` CSV (`;`-separated).
pub fn last_stat(csv: &str, column: &str) -> Option<u64> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next()?;
    let index = header.split(';').position(|h| h.trim() == column)?;
    let last = lines.next_back()?;
    last.split(';').nth(index)?.trim().parse().ok()
}

fn free_udp_port(ip: std::net::IpAddr) -> std::io::Result<u16> {
    let socket = std::net::UdpSocket::bind((ip, 0))?;
    Ok(socket.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_row_of_sipps_statistics() {
        let csv = "StartTime;SuccessfulCall(C);FailedCall(C);\n0;0;0;\n1;10;2;\n";
        assert_eq!(last_stat(csv, "SuccessfulCall(C)"), Some(10));
        assert_eq!(last_stat(csv, "FailedCall(C)"), Some(2));
        assert_eq!(last_stat(csv, "Nope"), None);
    }
}
