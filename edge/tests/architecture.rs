//! The architecture's invariants, checked by the build instead of by review (see
//! `ARCHITECTURE.md`):
//! - `freya-sip`, the SIP core, has no tokio anywhere in its dependency tree, and reaches neither
//!   `freya-edge` nor `freya-control`; `freya-shared` reaches none of the three. Read from the
//!   workspace's `Cargo.lock`, walked transitively. The lock lists a package's dependencies of
//!   every kind (dev ones too, for workspace members) and every feature enabled anywhere, so the
//!   check is stricter than `cargo tree -e normal`, never looser.
//! - No function in a shell (the SIP task's and the call task's files, in [`SHELLS`]) is over
//!   [`MAX_SHELL_FN_LINES`] lines: a shell that grows long functions is growing logic that
//!   belongs in a core, with a test.
//! - The call's sans-IO parts (the files in [`CALL_CORES`]) neither name tokio nor await: a call's
//!   decisions stay testable in simulated time. Nor do the cluster's ([`CLUSTER_CORES`]), which
//!   also read no clock.
//!
//! Each check names what broke and where to look.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Files that are shells: sockets, tasks and channels around a sans-IO core. Add a file here
/// when it becomes one (every non-test file under `edge/src/sip/transport/` must be listed).
const SHELLS: &[&str] = &[
    "edge/src/sip/transport.rs",
    "edge/src/sip/transport/accept.rs",
    "edge/src/sip/transport/events.rs",
    "edge/src/sip/transport/icmp.rs",
    "edge/src/sip/transport/legs.rs",
    "edge/src/sip/transport/media_setup.rs",
    "edge/src/sip/transport/placing.rs",
    "edge/src/sip/transport/redirect.rs",
    "edge/src/sip/transport/records.rs",
    "edge/src/sip/transport/refusal.rs",
    "edge/src/sip/transport/registrations.rs",
    "edge/src/sip/transport/signals.rs",
    "edge/src/sip/transport/tcp.rs",
    "edge/src/sip/transport/tls.rs",
    "edge/src/call/task.rs",
    "edge/src/call/leg.rs",
    "edge/src/call/providers.rs",
    "edge/src/call/pipeline.rs",
    "edge/src/cluster/shell.rs",
    "edge/src/mesh/shell.rs",
    "edge/src/mesh/hosting.rs",
    "edge/src/call/task_mesh.rs",
    "edge/src/call/hosted.rs",
];

/// The cluster's sans-IO membership core: foca driven by datagrams and `Instant`s; and the
/// mesh's wire codec, connection bookkeeping and remote-leg playout.
const CLUSTER_CORES: &[&str] = &[
    "edge/src/mesh/codec.rs",
    "edge/src/mesh/peers.rs",
    "edge/src/mesh/remote_leg.rs",
    "edge/src/mesh/host.rs",
    "edge/src/cluster/membership.rs",
    "edge/src/cluster/identity.rs",
    "edge/src/cluster/seal.rs",
    "edge/src/cluster/health.rs",
    "edge/src/cluster/routing.rs",
    "edge/src/cluster/join.rs",
];

/// The call's sans-IO parts: every decision a call makes, driven by `now` and inputs, with no
/// tasks, sockets or awaits of their own (`CallCore` and what it owns).
const CALL_CORES: &[&str] = &[
    "edge/src/call/core.rs",
    "edge/src/call/core/bridge.rs",
    "edge/src/call/core/ending.rs",
    "edge/src/call/core/legs.rs",
    "edge/src/call/core/output.rs",
    "edge/src/call/core/start.rs",
    "edge/src/call/core/warm.rs",
    "edge/src/call/core/remote.rs",
    "edge/src/call/mix.rs",
    "edge/src/call/talk.rs",
    "edge/src/call/flow.rs",
    "edge/src/call/flow_agent.rs",
    "edge/src/call/flow_voice.rs",
    "edge/src/call/responder.rs",
    "edge/src/call/provider_request.rs",
    "edge/src/call/conversation.rs",
    "edge/src/call/conversation_api.rs",
    "edge/src/call/conversation_builtins.rs",
    "edge/src/call/conversation_flow.rs",
    "edge/src/call/conversation_reply.rs",
    "edge/src/call/listener.rs",
    "edge/src/call/media.rs",
    "edge/src/call/media/playback.rs",
    "edge/src/call/media/received.rs",
    "edge/src/call/digits.rs",
    "edge/src/call/liveness.rs",
    "edge/src/call/codec.rs",
];

/// The longest a function in a shell may be, from its `fn` line to its closing brace.
const MAX_SHELL_FN_LINES: usize = 100;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The workspace's `Cargo.lock`: each package's dependencies, by `name version`.
struct Lock {
    deps: HashMap<String, Vec<String>>,
    /// Every version of each package name, for dependencies the lock names without a version.
    versions: HashMap<String, Vec<String>>,
}

impl Lock {
    fn read() -> Self {
        let path = workspace_root().join("Cargo.lock");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        let lock: toml::Table = text.parse().expect("Cargo.lock is TOML");
        let packages = lock
            .get("package")
            .and_then(|p| p.as_array())
            .expect("Cargo.lock has [[package]] entries");
        let mut deps = HashMap::new();
        let mut versions: HashMap<String, Vec<String>> = HashMap::new();
        for package in packages {
            let field = |key: &str| package.get(key).and_then(|v| v.as_str()).unwrap_or("");
            let (name, version) = (field("name").to_owned(), field("version").to_owned());
            let list = package
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|d| d.iter().filter_map(|v| v.as_str()).map(str::to_owned))
                .into_iter()
                .flatten()
                .collect();
            deps.insert(format!("{name} {version}"), list);
            versions.entry(name).or_default().push(version);
        }
        Self { deps, versions }
    }

    /// The `name version` a dependency entry (`name`, `name version` or `name version (source)`)
    /// means.
    fn resolve(&self, entry: &str) -> String {
        let mut words = entry.split_whitespace();
        let name = words.next().unwrap_or_default();
        match words.next() {
            Some(version) => format!("{name} {version}"),
            None => {
                let versions = self.versions.get(name).map(Vec::as_slice).unwrap_or(&[]);
                assert_eq!(
                    versions.len(),
                    1,
                    "Cargo.lock names {name} without a version"
                );
                format!("{name} {}", versions[0])
            }
        }
    }

    /// Every package `name` reaches, with the chain of packages that leads to each (for the
    /// message when one should not be there).
    fn reachable(&self, name: &str) -> HashMap<String, Vec<String>> {
        let start = self.resolve(name);
        assert!(
            self.deps.contains_key(&start),
            "{name} is not in Cargo.lock"
        );
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let mut stack = vec![(start.clone(), vec![start])];
        while let Some((package, path)) = stack.pop() {
            for entry in self.deps.get(&package).into_iter().flatten() {
                let dep = self.resolve(entry);
                if !seen.contains_key(&dep) {
                    let mut chain = path.clone();
                    chain.push(dep.clone());
                    seen.insert(dep.clone(), chain.clone());
                    stack.push((dep, chain));
                }
            }
        }
        seen
    }

    /// Panics, naming the chain, if `from` reaches any package named in `forbidden`.
    fn assert_not_reached(&self, from: &str, forbidden: &[&str], why: &str) {
        let reached = self.reachable(from);
        let mut found = BTreeSet::new();
        for (package, chain) in &reached {
            let name = package.split_whitespace().next().unwrap_or_default();
            if forbidden.contains(&name) {
                found.insert(chain.join(" -> "));
            }
        }
        assert!(
            found.is_empty(),
            "{from} must not depend on {forbidden:?} ({why}), but Cargo.lock has:\n  {}",
            found.into_iter().collect::<Vec<_>>().join("\n  ")
        );
    }
}

#[test]
fn the_sip_core_has_no_tokio_in_its_dependency_tree() {
    Lock::read().assert_not_reached(
        "freya-sip",
        &["tokio"],
        "the SIP core is sans-IO: plain values driven with `now`, no async runtime; \
         see ARCHITECTURE.md, \"Architecture Invariant: freya-sip has no tokio\"",
    );
}

#[test]
fn the_sip_core_depends_on_no_edge_or_control_plane() {
    Lock::read().assert_not_reached(
        "freya-sip",
        &[
            "freya-edge",
            "freya-control",
            "freya-loadtest",
            "freya-proto",
        ],
        "the edge and the load tester use the SIP core, never the reverse",
    );
}

#[test]
fn the_shared_model_reaches_no_runtime_edge_or_control_plane() {
    Lock::read().assert_not_reached(
        "freya-shared",
        &[
            "tokio",
            "freya-edge",
            "freya-control",
            "freya-loadtest",
            "freya-sip",
        ],
        "the domain model both halves speak has no async runtime and sits below every crate",
    );
}

/// `text` with comments, string and character literals blanked (newlines kept), so that braces
/// and `fn` inside them are not counted.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && (next == '"' || next == '#') && !ident_before {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closes = |k: usize| {
                chars.get(k) == Some(&'"') && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#'))
            };
            while j < chars.len() && !closes(j) {
                blank(&mut out, chars[j]);
                j += 1;
            }
            i = j + 1 + hashes;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && (next == '\\' || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('{', '\n', '\''); a lifetime ('a) is left alone.
            i += if next == '\\' { 3 } else { 2 };
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Each function with a body in `text`: its name, first line (1-based) and length in lines,
/// from the line of `fn` to the line of its closing brace.
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(text);
    let bytes = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("fn ") {
        let start = at + offset;
        at = start + 3;
        if start > 0 && is_ident(bytes[start - 1]) {
            continue;
        }
        let name: String = code[at..]
            .chars()
            .take_while(|&c| c.is_alphanumeric() || c == '_')
            .collect();
        if name.is_empty() {
            continue; // a `fn(..)` pointer type
        }
        // The body opens at the first `{` before any `;` (a declaration has no body).
        let Some(open) = code[at..].find(['{', ';']).map(|o| at + o) else {
            break;
        };
        if bytes[open] == b';' {
            continue;
        }
        let mut depth = 0usize;
        let mut close = open;
        for (i, b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let first = line_of(start);
        found.push((name, first, line_of(close) - first + 1));
    }
    found
}

#[test]
fn no_function_in_a_shell_is_over_100_lines() {
    let root = workspace_root();
    let mut long = Vec::new();
    for shell in SHELLS {
        let path = root.join(shell);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read the shell file {shell}: {e}"));
        for (name, line, lines) in function_lengths(&text) {
            if lines > MAX_SHELL_FN_LINES {
                long.push(format!("{shell}:{line}: fn {name} is {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "a shell function over {MAX_SHELL_FN_LINES} lines holds logic that belongs in a \
         sans-IO core (with a test); split it:\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn every_sip_shell_file_is_checked() {
    let root = workspace_root();
    let mut files = vec![PathBuf::from("edge/src/sip/transport.rs")];
    let dir = root.join("edge/src/sip/transport");
    for entry in std::fs::read_dir(&dir).expect("edge/src/sip/transport/ exists") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".rs") && !name.ends_with("_tests.rs") && name != "tests.rs" {
            files.push(Path::new("edge/src/sip/transport").join(name));
        }
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !SHELLS.iter().any(|s| Path::new(s) == f.as_path()))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "shell files not in SHELLS (tests/architecture.rs): {missing:?}"
    );
}

#[test]
fn the_function_scanner_skips_braces_in_strings_comments_and_characters() {
    let text = r##"
fn short() {
    let s = "}}}";
    let r = r#"{{"#;
    let c = '{';
    // }
    /* } { */
}

fn longer<'a>(x: &'a str) -> impl Fn(u8) -> u8 {
    let f: fn(u8) -> u8 = |b| b;
    if x.is_empty() {
        f(1);
    }
    f
}

trait Declared {
    fn no_body(&self);
}
"##;
    let found = function_lengths(text);
    let names: Vec<_> = found.iter().map(|(n, _, l)| (n.as_str(), *l)).collect();
    assert_eq!(names, vec![("short", 7), ("longer", 7)]);
}

#[test]
fn the_lock_walk_finds_a_dependency_two_steps_away() {
    let lock = Lock::parse(
        r#"
version = 4

[[package]]
name = "core"
version = "0.1.0"
dependencies = ["middle"]

[[package]]
name = "middle"
version = "1.0.0"
dependencies = ["tokio 1.2.3 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "tokio"
version = "1.2.3"
"#,
    );
    let reached = lock.reachable("core");
    assert_eq!(
        reached.get("tokio 1.2.3").map(|c| c.join(" -> ")),
        Some("core 0.1.0 -> middle 1.0.0 -> tokio 1.2.3".to_owned())
    );
}

#[test]
fn the_call_core_names_no_tokio_and_never_awaits() {
    let root = workspace_root();
    let mut found = Vec::new();
    for file in CALL_CORES {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read the call core file {file}: {e}"));
        for (n, line) in code_only(&text).lines().enumerate() {
            for word in [
                "tokio",
                ".await",
                "async fn",
                "async move",
                "UdpSocket",
                "TcpStream",
                "std::thread",
            ] {
                if line.contains(word) {
                    found.push(format!("{file}:{}: `{word}`", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the call's sans-IO parts must not do I/O or await (move it to the call task, \
         `call/task.rs`, or the provider shell, `call/providers.rs`):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_cluster_core_names_no_tokio_and_reads_no_clock() {
    let root = workspace_root();
    let mut found = Vec::new();
    for file in CLUSTER_CORES {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read the cluster core file {file}: {e}"));
        for (n, line) in code_only(&text).lines().enumerate() {
            for word in [
                "tokio",
                ".await",
                "async ",
                "UdpSocket",
                "std::thread",
                "Instant::now",
                "SystemTime",
            ] {
                if line.contains(word) {
                    found.push(format!("{file}:{}: `{word}`", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the membership core takes time and datagrams as inputs (move I/O and clocks to \
         `cluster/shell.rs`):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_io_check_reads_code_not_comments_or_strings() {
    let text =
        "// tokio in a comment\nlet s = \"tokio::spawn\"; /* .await */ let x = 1;\nx.await\n";
    let code = code_only(text);
    assert!(!code.contains("tokio"), "{code}");
    assert!(code.contains("x.await"), "{code}");
}
