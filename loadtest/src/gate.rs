//! `--fail-if` thresholds, so a load test can gate CI: `v2v_p95_ms>800`, `failed>0`,
//! `setup_p99_ms>=50`. A crossed threshold makes the run exit non-zero; a misspelt metric is an
//! error that lists the known names rather than a silent pass.

use std::fmt;

use crate::summary::Summary;

/// Why a threshold could not be read or checked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    /// The text is not `METRIC OP NUMBER`.
    #[error("--fail-if {0:?}: expected METRIC<OP>NUMBER with OP one of > >= < <= ==")]
    Syntax(String),
    /// The metric does not exist.
    #[error("--fail-if: unknown metric {name:?}; known: {known}")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
}

/// One `--fail-if` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name, as in [`Summary::metrics`].
    pub metric: String,
    /// Comparison.
    pub op: Op,
    /// Limit.
    pub value: f64,
}

impl std::str::FromStr for Threshold {
    type Err = GateError;

    fn from_str(text: &str) -> Result<Self, GateError> {
        let syntax = || GateError::Syntax(text.to_owned());
        // Two-character operators first, so `>=` is not read as `>` then `=5`.
        for (token, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some((metric, value)) = text.split_once(token) {
                let metric = metric.trim();
                let value: f64 = value.trim().parse().map_err(|_| syntax())?;
                if metric.is_empty() {
                    return Err(syntax());
                }
                return Ok(Self {
                    metric: metric.to_owned(),
                    op,
                    value,
                });
            }
        }
        Err(syntax())
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
        };
        write!(f, "{}{op}{}", self.metric, self.value)
    }
}

impl Threshold {
    /// The measured value, if the threshold is crossed; `None` if the run passes it.
    pub fn crossed(&self, summary: &Summary) -> Result<Option<f64>, GateError> {
        let metrics = summary.metrics();
        let Some(&v) = metrics.get(&self.metric) else {
            return Err(GateError::UnknownMetric {
                name: self.metric.clone(),
                known: metrics.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let crossed = match self.op {
            Op::Gt => v > self.value,
            Op::Ge => v >= self.value,
            Op::Lt => v < self.value,
            Op::Le => v <= self.value,
            Op::Eq => v == self.value,
        };
        Ok(crossed.then_some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Distribution;

    #[test]
    fn thresholds_parse_and_judge_a_summary() {
        let summary = Summary {
            calls: 10,
            failed: 1,
            v2v_ms: Distribution::of((1..=100).map(f64::from).collect()),
            ..Summary::default()
        };
        let t: Threshold = "v2v_p95_ms>80".parse().unwrap();
        assert_eq!(t.crossed(&summary), Ok(Some(95.0)));
        let t: Threshold = "v2v_p95_ms >= 96".parse().unwrap();
        assert_eq!(t.crossed(&summary), Ok(None));
        let t: Threshold = "failed_pct>5".parse().unwrap();
        assert_eq!(t.crossed(&summary), Ok(Some(10.0)));
        assert!(matches!(
            "v2v_p95>1".parse::<Threshold>().unwrap().crossed(&summary),
            Err(GateError::UnknownMetric { .. })
        ));
        assert!("v2v_p95_ms".parse::<Threshold>().is_err());
        assert!("v2v_p95_ms>abc".parse::<Threshold>().is_err());
    }
}
