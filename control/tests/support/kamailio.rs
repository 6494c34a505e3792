//! kamailio 5.6 (Debian's `kamailio`) as the record-routing proxy in front of an edge, from
//! `tests/kamailio/proxy.cfg`: what a real deployment puts between carriers or phones and the
//! edge. Used by `sip_routes.rs` (with sipp) and `real_peers.rs` (with baresip).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A kamailio of its own, in the foreground, on a free port of 127.0.0.2, relaying new calls
/// to the edge; stopped (its whole process group) when dropped, its log printed if the test
/// failed.
pub struct Kamailio {
    child: Child,
    /// Where the proxy listens (UDP).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

const KAMAILIO: &str = "/usr/sbin/kamailio";

impl Kamailio {
    /// `None` only when kamailio is not installed (deploy/packages/test.txt installs it).
    pub fn start(edge: SocketAddr) -> Option<Self> {
        if !Path::new(KAMAILIO).exists() {
            eprintln!("SKIPPED: {KAMAILIO} is not installed (Debian package `kamailio`)");
            return None;
        }
        let modules = [
            "/usr/lib/x86_64-linux-gnu/kamailio/modules",
            "/usr/lib/aarch64-linux-gnu/kamailio/modules",
            "/usr/lib/kamailio/modules",
            "/usr/lib64/kamailio/modules",
        ]
        .into_iter()
        .find(|p| Path::new(p).join("rr.so").exists())
        .expect("kamailio is installed but its modules (rr.so) are not where Debian puts them");
        let addr = UdpSocket::bind("127.0.0.2:0")
            .and_then(|s| s.local_addr())
            .expect("a free port on 127.0.0.2");
        let dir = tempfile::tempdir().expect("temp dir");
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/proxy.cfg");
        let config = std::fs::read_to_string(template)
            .expect("tests/kamailio/proxy.cfg")
            .replace("@LISTEN@", &addr.to_string())
            .replace("@EDGE@", &edge.to_string());
        let cfg = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg, config).expect("config written");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("runtime dir");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log file");
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(KAMAILIO)
                .args(["-DD", "-E", "-f"])
                .arg(&cfg)
                .arg("-L")
                .arg(modules)
                .arg("-Y")
                .arg(&run)
                .arg("-w")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log),
            0,
        )
        .spawn()
        .expect("kamailio starts");
        let mut proxy = Self { child, addr, dir };
        proxy.until_listening();
        Some(proxy)
    }

    /// Waits until the proxy holds its port (binding it fails), or fails the test with its log.
    fn until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
            if UdpSocket::bind(self.addr).is_err() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not listen in 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What kamailio logged (each request it routed, with `debug=2`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // kamailio forks its workers into the group it leads: stop them all.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- kamailio log:\n{}", self.log());
        }
    }
}
