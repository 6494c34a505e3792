//! `freya doctor`: what a machine needs to run Freya, checked one line at a time — the offline
//! voice (espeak-ng, pocketsphinx and its model), the database, the data directory and its
//! permissions, the ports, the HTTPS certificate files, the clock and the provider settings — each line saying what it found
//! and, when something is wrong, the command that fixes it. `freya dev` runs the same checks
//! before it binds anything and logs what fails, so a demo that cannot hear says why.
//!
//! The checks only look: nothing is installed, created or migrated (the data directory and port
//! checks create a probe file and bind a probe socket, and remove them again).

mod machine;
mod ports;
mod providers;
mod storage;
mod tls;

use std::fmt;
use std::path::PathBuf;

use crate::dev::DevOptions;

/// The Debian packages these checks may ask for; `deploy/packages/runtime.txt` must list each
/// (a test compares them).
pub fn runtime_packages() -> &'static [&'static str] {
    machine::PACKAGES
}

/// What to check: the same options as `freya dev`, plus where the database is when it is not
/// the dev SQLite file.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The data directory (`DATA_DIR/freya.db` is the database unless `database_url` is set).
    pub data_dir: PathBuf,
    /// A database URL (sqlite or postgres) to check instead of the dev SQLite file.
    pub database_url: Option<String>,
    /// The REST API's address.
    pub http: String,
    /// The edge's SIP address (UDP and TCP; RTP binds on its IP).
    pub sip: String,
    /// Whether to try reaching the configured provider URLs.
    pub online: bool,
    /// The environment the edge would read its provider defaults from.
    pub environment: Vec<(String, String)>,
    /// The HTTPS certificate and key files (`http.tls_cert`, `http.tls_key`), to check that
    /// they load and fit together.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl DoctorOptions {
    /// The checks `freya dev` runs for its own options, offline, in this process's environment.
    pub fn for_dev(dev: &DevOptions) -> Self {
        DoctorOptions {
            data_dir: dev.data_dir.clone(),
            database_url: None,
            http: dev.http.clone(),
            sip: dev.sip.clone(),
            online: false,
            environment: std::env::vars().collect(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Fine; the detail says what was found.
    Passed { detail: String },
    /// Worth knowing but not in the way (an unsynchronised clock); does not fail the run.
    Warning { detail: String, fix: Option<String> },
    /// In the way; the fix is a command or an instruction.
    Failed { detail: String, fix: String },
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `espeak-ng`, `HTTP port`.
    pub name: String,
    pub outcome: CheckOutcome,
}

impl Check {
    /// A ✓ line.
    pub fn passed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Passed {
                detail: detail.into(),
            },
        }
    }

    /// A ⚠ line, with an optional remedy.
    pub fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Warning {
                detail: detail.into(),
                fix,
            },
        }
    }

    /// A ✗ line and the command or instruction that fixes it.
    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Failed {
                detail: detail.into(),
                fix: fix.into(),
            },
        }
    }

    /// Whether this check failed the run.
    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, CheckOutcome::Failed { .. })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mark, detail, fix) = match &self.outcome {
            CheckOutcome::Passed { detail } => ("✓", detail, None),
            CheckOutcome::Warning { detail, fix } => ("⚠", detail, fix.as_ref()),
            CheckOutcome::Failed { detail, fix } => ("✗", detail, Some(fix)),
        };
        write!(f, "{mark} {:<20} {detail}", self.name)?;
        if let Some(fix) = fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check's line, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed (warnings allowed).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(Check::is_failed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.is_failed())
    }

    /// `freya doctor`'s exit code: 0 when every check passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.passed() {
            0
        } else {
            1
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        match self.failures().count() {
            0 => writeln!(f, "\nEverything Freya needs is in place."),
            1 => writeln!(f, "\n1 problem: see the fix on its line."),
            n => writeln!(f, "\n{n} problems: see the fix on each line."),
        }
    }
}

/// Runs every check, in the order of the report.
pub async fn examine(options: &DoctorOptions) -> Report {
    let mut checks = vec![
        machine::espeak(),
        machine::local_recogniser(),
        machine::recogniser_adaptation(),
    ];
    checks.push(storage::database(&options.data_dir, options.database_url.as_deref()).await);
    checks.extend(storage::data_directory(&options.data_dir));
    checks.extend(ports::check(&options.http, &options.sip));
    checks.extend(tls::check(
        options.tls_cert.as_deref(),
        options.tls_key.as_deref(),
    ));
    checks.push(machine::clock());
    checks.extend(providers::check(&options.environment, options.online).await);
    Report { checks }
}

/// `freya dev`'s start: runs the checks for its options and logs each failure with its fix,
/// without stopping (the demo still starts, so the problem is seen in context).
pub async fn warn_at_start(dev: &DevOptions) {
    let report = examine(&DoctorOptions::for_dev(dev)).await;
    for check in &report.checks {
        match &check.outcome {
            CheckOutcome::Failed { detail, fix } => {
                tracing::warn!(check = %check.name, %fix, "{detail}");
            }
            CheckOutcome::Warning { detail, .. } => {
                tracing::info!(check = %check.name, "{detail}");
            }
            CheckOutcome::Passed { .. } => {}
        }
    }
    if !report.passed() {
        tracing::warn!("run `freya doctor` for the full report");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_line_names_the_fix_and_fails_the_report() {
        let report = Report {
            checks: vec![
                Check::passed("espeak-ng", "/usr/bin/espeak-ng"),
                Check::warning("clock", "not synchronised", None),
                Check::failed(
                    "local recogniser",
                    "pocketsphinx_continuous not found",
                    "sudo apt-get install pocketsphinx",
                ),
            ],
        };
        let text = report.to_string();
        assert!(
            text.contains("✓ espeak-ng            /usr/bin/espeak-ng\n"),
            "{text}"
        );
        assert!(
            text.contains("⚠ clock                not synchronised\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "✗ local recogniser     pocketsphinx_continuous not found \
                 — fix: sudo apt-get install pocketsphinx"
            ),
            "{text}"
        );
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn warnings_do_not_fail_the_report() {
        let report = Report {
            checks: vec![Check::warning("clock", "not synchronised", None)],
        };
        assert!(report.passed());
        assert_eq!(report.exit_code(), 0);
    }
}
