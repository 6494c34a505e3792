//! CPU use of this process, for heartbeats: user + system time from `/proc/self/stat` between
//! two samples. Elsewhere than Linux it reports zero rather than guessing.

use std::time::Instant;

/// Clock ticks per second of `/proc` times; 100 on every mainstream Linux build.
const TICKS_PER_SECOND: f64 = 100.0;

/// Remembers the previous sample.
pub(crate) struct CpuSampler {
    last: Option<(Instant, u64)>,
}

impl CpuSampler {
    pub(crate) fn new() -> Self {
        Self {
            last: read_ticks().map(|t| (Instant::now(), t)),
        }
    }

    /// Per mille of one core used since the previous call.
    pub(crate) fn sample(&mut self) -> u32 {
        let Some(ticks) = read_ticks() else { return 0 };
        let now = Instant::now();
        let permille = match self.last {
            Some((then, before)) => {
                let seconds = now.duration_since(then).as_secs_f64();
                if seconds <= 0.0 {
                    0
                } else {
                    let used = ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND;
                    (used / seconds * 1000.0)
                        .round()
                        .clamp(0.0, f64::from(u32::MAX)) as u32
                }
            }
            None => 0,
        };
        self.last = Some((now, ticks));
        permille
    }
}

fn read_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // utime and stime are the 14th and 15th fields of the whole line: 12th and 13th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
