//! CPU and memory of a process, read from `/proc`: how much of the machine the edge under test
//! (or sipp, or we ourselves) used. Linux only; on other systems every read is `None`.

use std::time::Instant;

/// Kernel clock ticks per second for `/proc/PID/stat` times (USER_HZ, 100 on Linux everywhere
/// that matters; reading sysconf would need libc for one constant).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcReading {
    /// When it was read.
    pub at: Instant,
    /// User + system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// Resident set size, in MiB.
    pub rss_mib: f64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` if the process is gone.
pub fn read(pid: u32) -> Option<ProcReading> {
    read_path(&format!("/proc/{pid}"))
}

/// The same for this process.
pub fn read_self() -> Option<ProcReading> {
    read_path("/proc/self")
}

fn read_path(dir: &str) -> Option<ProcReading> {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(ProcReading {
        at: Instant::now(),
        cpu_secs: cpu_secs_from_stat(&stat)?,
        rss_mib: rss_mib_from_status(&status)?,
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in seconds. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn cpu_secs_from_stat(stat: &str) -> Option<f64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// VmRSS of a `/proc/PID/status` file, in MiB.
pub fn rss_mib_from_status(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU use between two readings, in percent of one core.
pub fn cpu_percent(earlier: &ProcReading, later: &ProcReading) -> f64 {
    let wall = later.at.saturating_duration_since(earlier.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    100.0 * (later.cpu_secs - earlier.cpu_secs).max(0.0) / wall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_name_and_status() {
        let stat =
            "1234 (freya edge) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1 1 1";
        assert_eq!(cpu_secs_from_stat(stat), Some(3.0));
        let status = "Name:\tfreya\nVmRSS:\t   20480 kB\nThreads: 8\n";
        assert_eq!(rss_mib_from_status(status), Some(20.0));
        assert!(read_self().is_some_and(|r| r.rss_mib > 0.0));
    }
}
