//! `freya`: run the whole platform on one machine (`dev`), or its halves as separate processes
//! (`control`, `edge`), migrate a database (`migrate`), back a SQLite one up or restore it
//! (`backup`, `restore`), re-seal its secrets under a new key (`secrets rotate-key`), or check
//! that this machine can run it (`doctor`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use freya_control::config::ControlConfig;
use freya_control::dev::{self, DevOptions};
use freya_control::doctor::{self, DoctorOptions};
use freya_control::server::ControlPlane;
use freya_control::store::{PoolSize, Store};
use freya_edge::telemetry::LogFormat;
use freya_edge::{Edge, EdgeConfig};

#[derive(Parser)]
#[command(
    name = "freya",
    version,
    about = "Freya: self-hosted voice-AI telephony"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for a terminal, `json` (one object a line;
    /// a call's lines carry its `call_id`, `workspace_id` and `trace_id`) for a log shipper.
    /// Traces go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[arg(long, global = true, env = "FREYA_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Everything on one machine: control plane on embedded SQLite, one edge, a demo agent.
    Dev(DevOptions),
    /// The control plane alone (REST API, dashboard, gRPC for edges).
    Control {
        /// TOML configuration file; FREYA_* variables override it.
        #[arg(long)]
        config: PathBuf,
        /// Only check the configuration (the file and the FREYA_* variables: keys, types,
        /// values) and exit, 0 when it would start; touches no database, port or file.
        #[arg(long)]
        check: bool,
    },
    /// One edge, connecting to a control plane.
    Edge {
        /// TOML configuration file; FREYA_* variables override it.
        #[arg(long)]
        config: PathBuf,
        /// Only check the configuration (the file and the FREYA_* variables: keys, types,
        /// values) and exit, 0 when it would start; touches no control plane, port or file.
        #[arg(long)]
        check: bool,
    },
    /// Call an agent from this terminal and talk to it (see `freya call --help`).
    #[command(disable_help_flag = true)]
    Call {
        /// Everything `freya call` takes: `sip:NUMBER@HOST:PORT [--say TEXT]... [--record FILE]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Real SIP calls with real audio against an edge, measured (see `freya loadtest --help`).
    #[command(disable_help_flag = true)]
    Loadtest {
        /// Everything `freya-loadtest` takes.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Check that this machine can run Freya: voice packages, database, data directory, ports,
    /// clock, provider settings. Exits 1 when something is wrong, naming the fix.
    Doctor {
        /// The data directory `freya dev` would use (its database is DATA_DIR/freya.db).
        #[arg(long, default_value = "./freya-data")]
        data_dir: PathBuf,
        /// Check this database (sqlite:// or postgres://) instead of DATA_DIR/freya.db.
        #[arg(long)]
        database_url: Option<String>,
        /// REST API and dashboard address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// The edge's SIP address (UDP and TCP); IPv6 in brackets (`[::1]:5060`), and `[::]:5060`
        /// listens on IPv6 and IPv4 alike.
        #[arg(long, default_value = "127.0.0.1:5060")]
        sip: String,
        /// Also try to reach the configured provider URLs.
        #[arg(long)]
        online: bool,
        /// The HTTPS certificate chain (`http.tls_cert`): checked to load, fit its key and not
        /// be expired.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The HTTPS private key (`http.tls_key`).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Copy a SQLite database, consistently, while the control plane runs (VACUUM INTO).
    /// PostgreSQL and CockroachDB are backed up with their own tools (deploy/README.md).
    Backup {
        /// sqlite://PATH of the database to copy.
        #[arg(long, env = "FREYA_DATABASE_URL")]
        database_url: String,
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace a SQLite database with a backup, after checking the backup.
    Restore {
        /// The backup file `freya backup` wrote.
        #[arg(long)]
        from: PathBuf,
        /// sqlite://PATH of the database to replace.
        #[arg(long, env = "FREYA_DATABASE_URL")]
        database_url: String,
        /// Replace an existing database, even one a running process holds.
        #[arg(long)]
        force: bool,
    },
    /// Create a person who can log in: the first one of a new deployment, who then creates
    /// workspaces and API keys through the API. The password comes from FREYA_USER_PASSWORD
    /// (at least 12 characters), or one is made and printed.
    CreateUser {
        /// sqlite://PATH or postgres://... of the control plane's database (migrated first).
        #[arg(long, env = "FREYA_DATABASE_URL")]
        database_url: String,
        /// The login email.
        #[arg(long)]
        email: String,
        /// The name shown for them.
        #[arg(long, default_value = "Admin")]
        name: String,
    },
    /// Secrets at rest: `freya secrets rotate-key` re-seals them under a new key.
    Secrets {
        #[command(subcommand)]
        action: SecretsCommand,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// sqlite://PATH?mode=rwc or postgres://USER:PASS@HOST:PORT/DB
        #[arg(long, env = "FREYA_DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-seal every sealed secret (provider, agent and webhook secrets, the cluster CA's key)
    /// under a new key, while the control plane runs; safe to stop and run again. Values are
    /// opened with auth.encryption_key and auth.previous_encryption_keys.
    RotateKey {
        /// The control plane's TOML configuration (database.url, auth.*); FREYA_* override it.
        #[arg(long)]
        config: PathBuf,
        /// A file holding the new key (64 hex characters: `openssl rand -hex 32`). Without it,
        /// the configuration's auth.encryption_key is the new key.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// Rows read per batch.
        #[arg(long, default_value_t = 200)]
        batch_size: u32,
        /// Stop after this many batches that re-sealed something (a large store in parts);
        /// running the command again carries on.
        #[arg(long)]
        max_batches: Option<u32>,
    },
    /// Make a new recording keypair the one edges seal recordings to (from their next
    /// configuration snapshot); earlier keys are kept, so recordings sealed to them still open.
    RotateRecordingKey {
        /// The control plane's TOML configuration (database.url, auth.*); FREYA_* override it.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Loadtest { args } => {
            let program = std::iter::once(std::ffi::OsString::from("freya loadtest"));
            Ok(freya_loadtest::cli::main_from(program.chain(args)))
        }
        Command::Call { args } => {
            let program = std::iter::once(std::ffi::OsString::from("freya call"));
            Ok(freya_loadtest::caller::main_from(program.chain(args)))
        }
        Command::Doctor {
            data_dir,
            database_url,
            http,
            sip,
            online,
            tls_cert,
            tls_key,
        } => {
            let options = DoctorOptions {
                data_dir,
                database_url,
                http,
                sip,
                online,
                environment: std::env::vars().collect(),
                tls_cert,
                tls_key,
            };
            let runtime =
                tokio::runtime::Runtime::new().context("while starting the async runtime")?;
            let report = runtime.block_on(doctor::examine(&options));
            print!("{report}");
            Ok(std::process::ExitCode::from(report.exit_code()))
        }
        command => run_command(command, cli.log_format),
    }
}

fn run_command(command: Command, log_format: LogFormat) -> anyhow::Result<std::process::ExitCode> {
    // Kept until the runtime is gone: dropping it sends the spans still queued.
    let _telemetry = freya_edge::telemetry::init(log_format, std::env::vars())
        .context("while reading the OTEL_* variables")?;
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    let outcome = runtime.block_on(run(command));
    drop(runtime);
    outcome?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Cancelled on Ctrl-C or SIGTERM.
fn stop_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        cancel.cancel();
    });
    token
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(options) => dev::run(options, stop_on_signal()).await,
        Command::Control {
            config: path,
            check,
        } => {
            let config: ControlConfig =
                freya_shared::config::load(Some(&path), "FREYA_", std::env::vars())?;
            if check {
                println!("{}: configuration ok", path.display());
                return Ok(());
            }
            let control = ControlPlane::start(&config).await?;
            let stop = stop_on_signal();
            let token = control.shutdown_token();
            tokio::spawn(async move {
                stop.cancelled().await;
                token.cancel();
            });
            control.run_until_stopped().await
        }
        Command::Edge {
            config: path,
            check,
        } => {
            let config: EdgeConfig =
                freya_shared::config::load(Some(&path), "FREYA_", std::env::vars())?;
            if check {
                println!("{}: configuration ok", path.display());
                return Ok(());
            }
            let edge = Edge::start(&config).await?;
            let stop = stop_on_signal();
            let own = edge.shutdown_token();
            let leave = edge.state.leave_requested();
            tokio::select! {
                _ = stop.cancelled() => {
                    // SIGTERM drains (a second signal stops at once); the edge's own stop does not.
                    edge.drain_and_stop(stop_on_signal()).await;
                }
                // `POST /v1/edges/{id}/drain` does what SIGTERM does; a signal then stops at once.
                _ = leave.cancelled() => edge.drain_and_stop(stop.clone()).await,
                _ = own.cancelled() => edge.stop().await,
            }
            Ok(())
        }
        Command::Loadtest { .. } | Command::Call { .. } | Command::Doctor { .. } => {
            Err(anyhow::anyhow!(
                "`freya loadtest`, `freya call` and `freya doctor` are dispatched before the \
                 runtime starts"
            ))
        }
        Command::Backup { database_url, to } => {
            freya_control::store::backup::backup(&database_url, &to)
                .await
                .context("while backing up")?;
            println!("backed up to {}", to.display());
            Ok(())
        }
        Command::Restore {
            from,
            database_url,
            force,
        } => {
            freya_control::store::backup::restore(&from, &database_url, force)
                .await
                .context("while restoring")?;
            println!("restored from {}", from.display());
            Ok(())
        }
        Command::CreateUser {
            database_url,
            email,
            name,
        } => create_user(&database_url, &email, &name).await,
        Command::Secrets {
            action:
                SecretsCommand::RotateKey {
                    config,
                    new_key_file,
                    batch_size,
                    max_batches,
                },
        } => {
            let config: ControlConfig =
                freya_shared::config::load(Some(&config), "FREYA_", std::env::vars())?;
            let options = freya_control::store::reseal::ResealOptions {
                batch_size,
                stop_after_batches: max_batches,
            };
            let report = freya_control::rekey::rotate(&config, new_key_file.as_deref(), options)
                .await
                .context("while rotating the secrets key")?;
            for (kind, count) in &report.resealed {
                println!("re-sealed {count} {kind} secret(s)");
            }
            println!(
                "re-sealed {} value(s) under key {}; {} already under it; {} changed meanwhile \
                 (left as written)",
                report.total_resealed(),
                report.key_id,
                report.already_current,
                report.changed_meanwhile
            );
            if report.complete {
                println!(
                    "every sealed value is under key {}: previous keys may be removed from \
                     auth.previous_encryption_keys",
                    report.key_id
                );
            } else {
                println!("stopped after --max-batches: run the command again to carry on");
            }
            Ok(())
        }
        Command::Secrets {
            action: SecretsCommand::RotateRecordingKey { config },
        } => {
            let config: ControlConfig =
                freya_shared::config::load(Some(&config), "FREYA_", std::env::vars())?;
            let key = freya_control::rekey::rotate_recording_key(&config)
                .await
                .context("while rotating the recording key")?;
            println!(
                "edges seal new recordings to recording key {} from their next snapshot; \
                 earlier keys are kept",
                key.to_hex()
            );
            Ok(())
        }
        Command::Migrate { database_url } => {
            migrated_store(&database_url).await?.close().await;
            println!("database is up to date");
            Ok(())
        }
    }
}

/// The store at `--database-url`, migrated, for a one-off command (a pool of one or two).
async fn migrated_store(database_url: &str) -> anyhow::Result<Store> {
    let pool = PoolSize {
        min_connections: 1,
        max_connections: 2,
    };
    let store = Store::connect(database_url, pool)
        .await
        .context("while connecting to --database-url")?;
    store.migrate().await.context("while migrating")?;
    Ok(store)
}

/// `freya create-user`: migrates the database, then adds the person.
async fn create_user(database_url: &str, email: &str, name: &str) -> anyhow::Result<()> {
    use rand::Rng;
    let given = std::env::var("FREYA_USER_PASSWORD").ok();
    if given.as_ref().is_some_and(|p| p.chars().count() < 12) {
        anyhow::bail!("FREYA_USER_PASSWORD must be at least 12 characters");
    }
    let password = given.clone().unwrap_or_else(|| {
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect()
    });
    let store = migrated_store(database_url).await?;
    let hash = freya_control::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("while hashing the password: {e}"))?;
    let created = store.create_user(email, name, &hash).await;
    store.close().await;
    let id = created.with_context(|| format!("while creating {email}"))?;
    println!("created user {id} ({email})");
    if given.is_none() {
        println!("password: {password}");
    }
    Ok(())
}
