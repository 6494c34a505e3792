//! Every log line a test's process writes, captured as text: for tests that prove what a log
//! line says (a refusal naming its recording and reason) or that no line carries a secret.
//! One subscriber per process (the test runner starts one process per test).

use std::sync::{Arc, Mutex};

/// The captured lines, shared with the subscriber's writer.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs the process's log subscriber at `level` (and above), writing here.
    pub fn install(level: tracing::Level) -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the test's log subscriber");
        logs
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }

    /// The lines logged so far that contain every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .map(str::to_owned)
            .collect()
    }

    /// Forgets what was logged so far.
    pub fn clear(&self) {
        self.0.lock().expect("logs").clear();
    }
}
