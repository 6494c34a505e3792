//! The edge's own account of how evenly it sends: its `/metrics` histogram of each outgoing RTP
//! packet's inter-departure deviation (`freya_edge_rtp_departure_deviation_seconds`), read before
//! and after the run so that only this run's packets count. This is the capacity criterion
//! ("inter-departure p99 under 5 ms") measured where it is defined: at the sender, free of the
//! load generator's own scheduling delays, which the inter-arrival figures include.

use serde::Serialize;

/// The histogram's name in the edge's Prometheus text.
pub const DEPARTURE_METRIC: &str = "freya_edge_rtp_departure_deviation_seconds";

/// The deviation every figure below is compared with: the capacity target.
const TARGET_SECS: f64 = 0.005;

/// Cumulative bucket counts of one Prometheus histogram (`le` bounds in seconds, ascending;
/// the last bound is `+Inf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    bounds: Vec<f64>,
    cumulative: Vec<u64>,
}

/// Why the edge's metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The request failed or the edge answered with an error.
    #[error("cannot read {url}: {message}")]
    Http {
        /// The metrics URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The page has no departure histogram (an edge older than this load generator?).
    #[error("{url} has no {DEPARTURE_METRIC} histogram")]
    Missing {
        /// The metrics URL.
        url: String,
    },
}

impl Buckets {
    /// The histogram `name` in a Prometheus text exposition, if it is there.
    pub fn parse(text: &str, name: &str) -> Option<Self> {
        let prefix = format!("{name}_bucket{{");
        let mut pairs: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (labels, value) = rest.split_once("} ")?;
                let le = labels
                    .split(',')
                    .find_map(|label| label.strip_prefix("le=\""))?
                    .trim_end_matches('"');
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, value.trim().parse::<f64>().ok()? as u64))
            })
            .collect();
        if pairs.is_empty() {
            return None;
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Self {
            bounds: pairs.iter().map(|p| p.0).collect(),
            cumulative: pairs.iter().map(|p| p.1).collect(),
        })
    }

    /// What was added between `before` and `self` (the same histogram read twice). A histogram
    /// that shrank (the edge restarted) counts from zero.
    pub fn since(&self, before: &Buckets) -> Buckets {
        if before.bounds != self.bounds || before.total() > self.total() {
            return self.clone();
        }
        Buckets {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&before.cumulative)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }

    /// Sums the same histogram from several edges.
    pub fn add(&mut self, other: &Buckets) {
        if self.bounds.is_empty() {
            *self = other.clone();
        } else if self.bounds == other.bounds {
            for (mine, theirs) in self.cumulative.iter_mut().zip(&other.cumulative) {
                *mine += theirs;
            }
        }
    }

    /// Observations counted.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The smallest bucket bound that at least `q` of the observations are under: the quantile
    /// as closely as the buckets can tell. `None` when nothing was observed.
    pub fn quantile_at_most(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let needed = (q * total as f64).ceil() as u64;
        self.bounds
            .iter()
            .zip(&self.cumulative)
            .find(|(_, &count)| count >= needed)
            .map(|(&bound, _)| bound)
    }

    /// The share of observations above `bound` (exact when `bound` is a bucket bound).
    pub fn fraction_above(&self, bound: f64) -> Option<f64> {
        let total = self.total();
        let under = self
            .bounds
            .iter()
            .zip(&self.cumulative)
            .take_while(|(&b, _)| b <= bound)
            .last()
            .map_or(0, |(_, &count)| count);
        (total > 0).then(|| (total - under) as f64 / total as f64)
    }
}

/// The run's inter-departure figures, as the edge(s) measured them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EdgeDeparture {
    /// Packets the edge(s) sent during the run (the first of each stream has no spacing).
    pub packets: u64,
    /// Median deviation from the media clock, at most this many ms (a bucket bound).
    pub p50_ms_at_most: Option<f64>,
    /// 99th percentile, at most this many ms.
    pub p99_ms_at_most: Option<f64>,
    /// 99.9th percentile, at most this many ms.
    pub p999_ms_at_most: Option<f64>,
    /// Percentage of packets that strayed by more than 5 ms.
    pub over_5ms_pct: Option<f64>,
}

impl EdgeDeparture {
    /// The figures of a run's buckets.
    pub fn of(buckets: &Buckets) -> Self {
        let ms = |secs: Option<f64>| secs.map(|s| s * 1000.0);
        Self {
            packets: buckets.total(),
            p50_ms_at_most: ms(buckets.quantile_at_most(0.50)),
            p99_ms_at_most: ms(buckets.quantile_at_most(0.99)),
            p999_ms_at_most: ms(buckets.quantile_at_most(0.999)),
            over_5ms_pct: buckets.fraction_above(TARGET_SECS).map(|f| 100.0 * f),
        }
    }
}

/// Reads the departure histogram of every edge and sums them.
pub async fn scrape_all(client: &reqwest::Client, urls: &[String]) -> Result<Buckets, ScrapeError> {
    let mut sum = Buckets::default();
    for url in urls {
        sum.add(&scrape(client, url).await?);
    }
    Ok(sum)
}

async fn scrape(client: &reqwest::Client, url: &str) -> Result<Buckets, ScrapeError> {
    let http = |e: reqwest::Error| ScrapeError::Http {
        url: url.to_owned(),
        message: e.to_string(),
    };
    let text = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(http)?
        .text()
        .await
        .map_err(http)?;
    Buckets::parse(&text, DEPARTURE_METRIC).ok_or_else(|| ScrapeError::Missing {
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(counts: [u64; 4]) -> String {
        format!(
            "# HELP {DEPARTURE_METRIC} spacing\n# TYPE {DEPARTURE_METRIC} histogram\n\
             {DEPARTURE_METRIC}_sum 1.5\n{DEPARTURE_METRIC}_count {}\n\
             {DEPARTURE_METRIC}_bucket{{le=\"0.001\"}} {}\n\
             {DEPARTURE_METRIC}_bucket{{le=\"0.005\"}} {}\n\
             {DEPARTURE_METRIC}_bucket{{le=\"0.02\"}} {}\n\
             {DEPARTURE_METRIC}_bucket{{le=\"+Inf\"}} {}\n\
             freya_edge_active_calls 3\n",
            counts[3], counts[0], counts[1], counts[2], counts[3]
        )
    }

    #[test]
    fn a_runs_share_of_the_histogram_gives_its_quantiles_and_its_share_over_5_ms() {
        let before = Buckets::parse(&page([100, 100, 100, 100]), DEPARTURE_METRIC).unwrap();
        let after = Buckets::parse(&page([1_000, 1_095, 1_099, 1_100]), DEPARTURE_METRIC).unwrap();
        let run = EdgeDeparture::of(&after.since(&before));
        assert_eq!(run.packets, 1_000);
        assert_eq!(run.p50_ms_at_most, Some(1.0));
        // 995 of 1000 within 5 ms: the 99th percentile is too; the 99.9th is not.
        assert_eq!(run.p99_ms_at_most, Some(5.0));
        assert_eq!(run.p999_ms_at_most, Some(20.0));
        let over = run.over_5ms_pct.unwrap();
        assert!((over - 0.5).abs() < 1e-9, "{over}");
    }

    #[test]
    fn two_edges_add_up_and_a_restarted_edge_counts_from_zero() {
        let a = Buckets::parse(&page([10, 10, 10, 10]), DEPARTURE_METRIC).unwrap();
        let mut sum = Buckets::default();
        sum.add(&a);
        sum.add(&a);
        assert_eq!(sum.total(), 20);
        let restarted = Buckets::parse(&page([4, 4, 4, 4]), DEPARTURE_METRIC).unwrap();
        assert_eq!(restarted.since(&a).total(), 4);
        assert_eq!(Buckets::default().quantile_at_most(0.99), None);
        assert_eq!(
            Buckets::parse("freya_edge_active_calls 3\n", DEPARTURE_METRIC),
            None
        );
    }
}
