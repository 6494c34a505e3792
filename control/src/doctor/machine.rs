//! Checks on the machine itself: the programs the offline voice runs (espeak-ng speaks,
//! pocketsphinx hears — without them the demo agent is mute or deaf) and the clock, which signs
//! tokens and stamps every call event.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use freya_edge::speech::stt::local::adapt::{self, FEATURES_PACKAGE, TRAIN_PACKAGE};
use freya_edge::speech::stt::local::{MODEL_PACKAGE, PROGRAM_PACKAGE};
use freya_edge::speech::stt::{LocalStt, LocalSttConfig};
use freya_edge::speech::tts::espeak::PACKAGE as ESPEAK_PACKAGE;
use freya_edge::speech::tts::EspeakConfig;
use freya_edge::speech::SpeechError;

use super::Check;

/// The Debian packages the checks below may ask for.
pub(super) const PACKAGES: &[&str] = &[
    ESPEAK_PACKAGE,
    PROGRAM_PACKAGE,
    MODEL_PACKAGE,
    TRAIN_PACKAGE,
    FEATURES_PACKAGE,
];

/// No clock running Freya is earlier than this (2026-01-01T00:00:00Z): a build of this code
/// cannot predate it, so an earlier clock has never been set.
const CLOCK_FLOOR: Duration = Duration::from_secs(1_767_225_600);

fn install(package: &str) -> String {
    format!("sudo apt-get install {package}")
}

/// `program` as found on `PATH` (or itself when it is a path that exists).
pub(super) fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub(super) fn espeak() -> Check {
    let program = EspeakConfig::default().program;
    match find_program(&program) {
        Some(found) => Check::passed("espeak-ng", found.display().to_string()),
        None => Check::failed(
            "espeak-ng",
            format!("{} not found on PATH", program.display()),
            install(ESPEAK_PACKAGE),
        ),
    }
}

pub(super) fn local_recogniser() -> Check {
    let config = LocalSttConfig::default();
    let name = "local recogniser";
    match LocalStt::new(config.clone()).check_installed() {
        Ok(()) => {
            let program = find_program(&config.program).unwrap_or(config.program);
            let model = config
                .acoustic_model
                .parent()
                .unwrap_or(&config.acoustic_model);
            Check::passed(
                name,
                format!("{}, model {}", program.display(), model.display()),
            )
        }
        Err(SpeechError::MissingPackage { program, package }) => {
            Check::failed(name, format!("{program} not found"), install(package))
        }
        Err(other) => Check::failed(
            name,
            other.to_string(),
            install(&format!("{PROGRAM_PACKAGE} {MODEL_PACKAGE}")),
        ),
    }
}

/// Whether the recogniser has been adapted to telephone audio (an edge does it at its start,
/// once per machine), or can be.
pub(super) fn recogniser_adaptation() -> Check {
    let name = "recogniser adapted";
    let config = LocalSttConfig::default();
    if let Some(model) = adapt::adapted_model(&config.work_dir) {
        return Check::passed(name, model.display().to_string());
    }
    match adapt::check_tools() {
        Ok(()) => Check::warning(
            name,
            format!(
                "not yet: the edge adapts it at its start (about half a minute), into {}",
                config.work_dir.display()
            ),
            None,
        ),
        Err(SpeechError::MissingPackage { program, package }) => Check::failed(
            name,
            format!("{program} not found; without it the recogniser understands far less"),
            install(package),
        ),
        Err(other) => Check::failed(
            name,
            other.to_string(),
            install(&format!("{TRAIN_PACKAGE} {FEATURES_PACKAGE}")),
        ),
    }
}

pub(super) fn clock() -> Check {
    let now = SystemTime::now();
    clock_verdict(now, kernel_clock_synchronised())
}

/// The clock line for `now`, given whether the kernel says the clock is synchronised (`None`:
/// it cannot tell us).
fn clock_verdict(now: SystemTime, synchronised: Option<bool>) -> Check {
    let name = "clock";
    let shown = humantime::format_rfc3339_seconds(now);
    let floor = SystemTime::UNIX_EPOCH + CLOCK_FLOOR;
    if now < floor {
        return Check::failed(
            name,
            format!(
                "{shown} is before this build ({})",
                humantime::format_rfc3339_seconds(floor)
            ),
            "set the clock: sudo timedatectl set-ntp true",
        );
    }
    match synchronised {
        Some(true) => Check::passed(name, format!("{shown}, synchronised")),
        Some(false) => Check::warning(
            name,
            format!("{shown}, but the kernel says it is not synchronised (no NTP)"),
            Some("sudo timedatectl set-ntp true".into()),
        ),
        None => Check::passed(name, shown.to_string()),
    }
}

/// Whether the kernel's clock discipline says the clock is synchronised (`adjtimex` with no
/// changes requested: `TIME_ERROR` or `STA_UNSYNC` mean it is not).
#[cfg(target_os = "linux")]
fn kernel_clock_synchronised() -> Option<bool> {
    // SAFETY: `timex` is plain data for which all zeroes is valid; with `modes` 0, adjtimex only
    // reads the kernel's state into the struct we own.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0)
}

#[cfg(not(target_os = "linux"))]
fn kernel_clock_synchronised() -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::CheckOutcome;

    #[test]
    fn a_clock_before_the_build_fails_and_an_unsynchronised_one_only_warns() {
        let epoch = clock_verdict(SystemTime::UNIX_EPOCH, Some(true));
        assert!(epoch.is_failed(), "{epoch}");
        assert!(epoch.to_string().contains("1970-01-01"), "{epoch}");
        let later = SystemTime::UNIX_EPOCH + CLOCK_FLOOR + Duration::from_secs(86_400);
        let unsynced = clock_verdict(later, Some(false));
        assert!(matches!(unsynced.outcome, CheckOutcome::Warning { .. }));
        assert!(!clock_verdict(later, Some(true)).is_failed());
        assert!(!clock_verdict(later, None).is_failed());
    }

    #[test]
    fn programs_are_found_on_path_and_missing_ones_are_not() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("freya-no-such-program")).is_none());
        assert!(find_program(Path::new("/nonexistent/espeak-ng")).is_none());
    }
}
