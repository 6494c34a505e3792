//! `freya doctor` as a user runs it: one line per check, the fix on every failing line, exit
//! code 1 when anything fails — for an uncreatable data directory, an unreachable database, a
//! port in use and a secret file others can read — and 0 on a healthy machine. Also keeps
//! `deploy/packages/runtime.txt` in step with the packages the doctor asks for.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;

/// Runs `freya doctor ARGS` with no provider environment; returns its exit code and output.
fn doctor(args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_freya"));
    command.arg("doctor").args(args);
    for name in [
        "FREYA_LLM_BASE_URL",
        "FREYA_LLM_API_KEY",
        "FREYA_LLM_MODEL",
        "OPENAI_API_KEY",
        "FREYA_STT_BASE_URL",
        "FREYA_STT_API_KEY",
        "FREYA_STT_MODEL",
    ] {
        command.env_remove(name);
    }
    let output = command.output().expect("run freya doctor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// An address on 127.0.0.1 whose port is free on TCP and UDP (for SIP, which takes both).
fn free_addr() -> String {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let addr = tcp.local_addr().expect("addr");
        if UdpSocket::bind(addr).is_ok() {
            return addr.to_string();
        }
    }
    panic!("no port free on both TCP and UDP");
}

/// The line for `check`, which must be there.
fn line<'a>(output: &'a str, check: &str) -> &'a str {
    output
        .lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(check))
        })
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{output}"))
}

/// `freya doctor` with its data directory in `dir`, HTTP on `http` and SIP on `sip`, and
/// `more` arguments.
fn doctor_at(dir: &Path, http: &str, sip: &str, more: &[&str]) -> (i32, String) {
    let mut args = vec!["--data-dir", path_arg(dir), "--http", http, "--sip", sip];
    args.extend_from_slice(more);
    doctor(&args)
}

/// The line of `check`, which must have failed, in the output of a doctor that exited 1.
fn failed<'a>(code: i32, output: &'a str, check: &str) -> &'a str {
    assert_eq!(code, 1, "{output}");
    let failed = line(output, check);
    assert!(failed.starts_with('✗'), "{output}");
    failed
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn every_package_the_doctor_asks_for_is_in_the_runtime_list() {
    let list_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/packages/runtime.txt"
    );
    let list = std::fs::read_to_string(list_path).expect("read deploy/packages/runtime.txt");
    let listed: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let package = words.next().unwrap_or_default();
            assert!(
                words.next().is_some(),
                "`{l}` has no CHECK after the package"
            );
            package
        })
        .collect();
    for package in freya_control::doctor::runtime_packages() {
        assert!(
            listed.contains(package),
            "`freya doctor` may ask for `{package}` but deploy/packages/runtime.txt does not \
             list it (listed: {listed:?})"
        );
    }
}

#[test]
fn a_healthy_machine_passes_with_a_line_for_every_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    #[cfg(unix)]
    chmod(dir.path(), 0o700);
    let (http, sip) = (free_addr(), free_addr());
    let (code, output) = doctor_at(dir.path(), &http, &sip, &[]);
    for check in [
        "espeak-ng",
        "local recogniser",
        "recogniser adapted",
        "database",
        "data directory",
        "data files",
        "HTTP port",
        "SIP port (UDP)",
        "SIP port (TCP)",
        "RTP ports",
        "clock",
        "default LLM",
        "default STT",
    ] {
        line(&output, check);
    }
    assert!(
        line(&output, "database").contains("will be created"),
        "{output}"
    );
    assert!(
        line(&output, "default LLM").contains("offline rules"),
        "{output}"
    );
    assert!(
        line(&output, "default STT").contains("offline pocketsphinx"),
        "{output}"
    );
    assert!(line(&output, "HTTP port").contains(&http), "{output}");
    // On this machine espeak-ng and pocketsphinx are installed (deploy/test.sh sees to it).
    assert!(!output.contains('✗'), "{output}");
    assert_eq!(code, 0, "{output}");
}

#[test]
fn a_data_directory_that_cannot_be_created_fails_naming_it_and_the_fix() {
    // Under a regular file: no one, not even root, can create it.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let dir = file.path().join("sub");
    let (code, output) = doctor_at(&dir, "127.0.0.1:0", "127.0.0.1:0", &[]);
    let data_dir = failed(code, &output, "data directory");
    assert!(data_dir.contains(path_arg(&dir)), "{output}");
    assert!(data_dir.contains("fix: pass --data-dir"), "{output}");
}

#[test]
fn an_unreachable_database_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = "postgres://nobody@127.0.0.1:1/x";
    let (code, output) = doctor_at(
        dir.path(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--database-url", url],
    );
    let database = failed(code, &output, "database");
    assert!(database.contains(url), "{output}");
    assert!(database.contains("fix: "), "{output}");
}

#[test]
fn a_migrated_database_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/freya.db?mode=rwc", dir.path().display());
    let migrated = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("run freya migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    let (_, output) = doctor_at(dir.path(), "127.0.0.1:0", "127.0.0.1:0", &[]);
    let database = line(&output, "database");
    assert!(database.starts_with('✓'), "{output}");
    assert!(database.contains("migrations applied"), "{output}");
}

#[test]
fn a_port_in_use_is_reported_with_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, output) = doctor_at(dir.path(), &addr, "127.0.0.1:0", &[]);
    let http = failed(code, &output, "HTTP port");
    assert!(http.contains(&addr), "{output}");
    assert!(
        http.contains("fix: stop the process using it or pass --http"),
        "{output}"
    );
    drop(taken);
}

#[cfg(unix)]
#[test]
fn a_secret_file_others_can_read_is_reported_with_its_chmod() {
    let dir = tempfile::tempdir().expect("temp dir");
    chmod(dir.path(), 0o700);
    let secret = dir.path().join("auth.json");
    std::fs::write(&secret, b"{}").expect("write auth.json");
    chmod(&secret, 0o640);
    let (code, output) = doctor_at(dir.path(), "127.0.0.1:0", "127.0.0.1:0", &[]);
    let files = failed(code, &output, "data files");
    assert!(
        files.contains(&format!("fix: chmod 600 {}", secret.display())),
        "{output}"
    );
}
