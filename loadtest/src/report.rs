//! The end-of-run files: the [`Summary`] as JSON (every figure, every call), and a
//! self-contained HTML page with inline SVG plots — latency CDFs, setups and active calls over
//! time, jitter and inter-arrival distributions, edge CPU/RSS — that opens with no network.

use std::fmt::Write as _;
use std::path::Path;

use crate::summary::{Distribution, Summary};

/// Writes the summary as pretty JSON.
pub fn write_json(summary: &Summary, path: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Writes the HTML report.
pub fn write_html(summary: &Summary, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, html(summary))
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// One line on a chart: a name and (x, y) points.
struct Series<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
}

/// The HTML page.
pub fn html(s: &Summary) -> String {
    let mut page = String::new();
    let _ =
        write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>freya-loadtest report</title>\
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}\
svg{{margin:1em 1em 0 0;border:1px solid #eee}}</style></head><body>\
<h1>freya-loadtest</h1><p>{} calls in {:.1} s: {} succeeded, {} failed; peak {} active; \
{:.1} setups/s; RTP sent {}, received {}, lost {} ({:.3} %), late {}.</p>",
        s.calls, s.wall_secs, s.succeeded, s.failed, s.peak_active, s.setup_rate_per_sec,
        s.rtp_sent, s.rtp_received, s.rtp_lost, s.loss_pct, s.rtp_late
    );
    page.push_str(
        "<table><tr><th>ms</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>",
    );
    for (name, d) in rows(s) {
        let _ = write!(
            page,
            "<tr><th>{name}</th><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            d.count, d.p50, d.p95, d.p99, d.max
        );
    }
    page.push_str("</table>");
    if let Some(d) = &s.edge_departure {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("≤ {v} ms"));
        let _ = write!(
            page,
            "<p>The edge's own inter-departure deviation ({} packets, from its /metrics): \
             p50 {}, p99 {}, p99.9 {}; {:.3} % of packets over 5 ms.</p>",
            d.packets,
            ms(d.p50_ms_at_most),
            ms(d.p99_ms_at_most),
            ms(d.p999_ms_at_most),
            d.over_5ms_pct.unwrap_or(0.0)
        );
    }
    if s.redirects > 0 {
        let _ = write!(page, "<p>Redirected (3xx followed): {}</p>", s.redirects);
    }
    if !s.failures.is_empty() {
        page.push_str("<h2>Failures</h2><ul>");
        for (reason, n) in &s.failures {
            let _ = write!(page, "<li>{}: {n}</li>", escape(reason));
        }
        page.push_str("</ul>");
    }
    page.push_str("<h2>Latency</h2>");
    page.push_str(&chart(
        "Latency CDF",
        "ms",
        "fraction of calls / turns",
        &[
            cdf("setup", &s.setup_ms),
            cdf("first audio", &s.first_audio_ms),
            cdf("voice-to-voice", &s.v2v_ms),
            cdf("barge-in reaction", &s.barge_in_ms),
        ],
    ));
    page.push_str("<h2>Over time</h2>");
    let tl = &s.timeline;
    page.push_str(&chart(
        "Calls",
        "s",
        "calls",
        &[
            Series {
                name: "active",
                points: tl.iter().map(|p| (p.t, p.active as f64)).collect(),
            },
            Series {
                name: "setups/s",
                points: tl.iter().map(|p| (p.t, p.answered as f64)).collect(),
            },
            Series {
                name: "failed/s",
                points: tl.iter().map(|p| (p.t, p.failed as f64)).collect(),
            },
        ],
    ));
    let cpu: Vec<_> = tl
        .iter()
        .filter_map(|p| p.edge_cpu_pct.map(|c| (p.t, c)))
        .collect();
    let own: Vec<_> = tl
        .iter()
        .filter_map(|p| p.self_cpu_pct.map(|c| (p.t, c)))
        .collect();
    page.push_str(&chart(
        "CPU",
        "s",
        "% of one core",
        &[
            Series {
                name: "edge",
                points: cpu,
            },
            Series {
                name: "load generator",
                points: own,
            },
        ],
    ));
    let rss: Vec<_> = tl
        .iter()
        .filter_map(|p| p.edge_rss_mib.map(|r| (p.t, r)))
        .collect();
    if !rss.is_empty() {
        page.push_str(&chart(
            "Edge memory",
            "s",
            "RSS MiB",
            &[Series {
                name: "edge RSS",
                points: rss,
            }],
        ));
    }
    page.push_str("<h2>RTP received</h2>");
    page.push_str(&chart(
        "RFC 3550 jitter per call (CDF)",
        "ms",
        "fraction of calls",
        &[cdf("jitter", &s.jitter_ms)],
    ));
    page.push_str(&chart(
        "Packet inter-arrival (CDF)",
        "ms",
        "fraction of packets",
        &[
            cdf("inter-arrival", &s.interarrival_ms),
            cdf("our send lateness", &s.send_lateness_ms),
        ],
    ));
    page.push_str("</body></html>\n");
    page
}

fn rows(s: &Summary) -> [(&'static str, &Distribution); 7] {
    [
        ("setup (INVITE→200)", &s.setup_ms),
        ("first agent audio", &s.first_audio_ms),
        ("voice-to-voice", &s.v2v_ms),
        ("barge-in reaction", &s.barge_in_ms),
        ("jitter (RFC 3550)", &s.jitter_ms),
        ("inter-arrival", &s.interarrival_ms),
        ("our send lateness", &s.send_lateness_ms),
    ]
}

fn cdf<'a>(name: &'a str, d: &Distribution) -> Series<'a> {
    let n = d.sorted.len();
    // At most ~400 points: enough for a smooth line, small enough for a light page.
    let step = (n / 400).max(1);
    let points = d
        .sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == n)
        .map(|(i, &v)| (v, (i + 1) as f64 / n as f64))
        .collect();
    Series { name, points }
}

/// A line chart as inline SVG.
fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 560.0;
    const H: f64 = 300.0;
    const L: f64 = 60.0;
    const B: f64 = 40.0;
    const T: f64 = 30.0;
    const R: f64 = 20.0;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-size=\"11\">\
<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        W / 2.0,
        escape(title)
    );
    if x0 > x1 {
        svg.push_str("<text x=\"200\" y=\"150\">no data</text></svg>");
        return svg;
    }
    let x0 = x0.min(0.0);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let y1 = if y1 > 0.0 { y1 * 1.05 } else { 1.0 };
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - y / y1 * (H - B - T);
    let _ = write!(
        svg,
        "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"#444\"/>",
        H - B, W - R, H - B, H - B
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (xv, yv) = (x0 + f * (x1 - x0), f * y1);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
<line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            px(xv), H - B + 14.0, short(xv), L - 4.0, py(yv) + 4.0, short(yv), py(yv), W - R, py(yv)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>",
        (L + W - R) / 2.0, H - 6.0, escape(x_label), H / 2.0, H / 2.0, escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
<text x=\"{}\" y=\"{}\" fill=\"{color}\">{}</text>",
            path.join(" "),
            L + 10.0,
            T + 14.0 * (i as f64 + 1.0),
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_self_contained_and_plots_the_cdfs() {
        let s = Summary {
            calls: 3,
            setup_ms: Distribution::of(vec![3.0, 5.0, 4.0]),
            ..Summary::default()
        };
        let page = html(&s);
        assert!(page.contains("<svg") && page.contains("polyline"));
        assert!(
            !page.contains("src=") && !page.contains("href="),
            "nothing fetched"
        );
        assert!(!page.contains("<script"));
    }
}
