//! Commands to an edge through whichever control-plane replica holds its command stream. An
//! edge keeps one stream, to one replica; a request may reach any. [`CommandRelay::deliver`]
//! sends on the stream when it is here, and otherwise queues the command in the database
//! (`store/edge_commands.rs`) and waits a little for the holding replica to send it: every
//! process looks for commands queued for its edges every [`PASS_PERIOD`], and at once when a
//! stream opens or it queued one itself. A placement does the same through the call's own row
//! ([`CommandRelay::place`], handed over by `retry.rs` like a retry).
//!
//! A request answers once the command is on the edge's stream (as when the stream is here), or
//! once a live replica holds it (it will be sent, again by another replica if that one dies);
//! when no replica takes it within [`HANDOVER_WAIT`], the request takes it back and says the
//! edge is unreachable, as before: a command is never left behind to surprise anyone later.
//!
//! A command the edge answers (a `TestTrunk`) is answered to the replica holding its stream;
//! when that is another, the answer comes back through the command's row
//! ([`CommandRelay::answer`], kept there by `grpc/trunk_health.rs`).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::CommandHub;
use crate::store::{CommandOutcome, NewEdgeCommand, QueueError, Store, StoreError};
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::EdgeCommand;
use freya_shared::ids::{new_id, now_ms};

/// How often each process looks for commands queued for the edges connected to it.
pub(crate) const PASS_PERIOD: Duration = Duration::from_millis(100);

/// How long a request waits for the replica holding an edge's stream to take its command.
pub(crate) const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// How often a waiting request looks at its command again.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// How long a replica holds a queued command while sending it; a killed holder's commands go
/// to the next holder of the edge's stream after this.
const COMMAND_LEASE_MS: i64 = 5_000;

/// A queued command not sent within this is never sent.
const COMMAND_TTL_MS: i64 = 30_000;

/// Most open commands one edge may have queued; beyond, nobody is taking them and a request
/// is refused rather than filling the table.
pub(crate) const MAX_OPEN_PER_EDGE: i64 = 256;

/// Most queued commands one pass sends, and edges named in one query.
const BATCH: i64 = 64;
const EDGES_PER_QUERY: usize = 100;

/// How long closed commands are kept (for the operator's eye), and how often they are swept.
const KEEP_CLOSED_MS: i64 = 10 * 60 * 1000;
const SWEEP_EVERY_MS: i64 = 10_000;
const SWEEP_BATCH: i64 = 1_000;

/// The outbox's `kind` of a `TestTrunk`, the command whose answer may come back through it.
pub(crate) const TEST_TRUNK_KIND: &str = "test_trunk";

/// How a command reached its edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// It is on the edge's command stream, sent by this process.
    Sent,
    /// Another replica, holding the edge's stream, sent it from the outbox.
    Relayed,
    /// A live replica holding the edge's stream has it and sends it (again after its lease,
    /// by another, if it dies).
    InHand,
    /// Its call ended before it went out: there was nothing left to do.
    Moot,
}

/// Why a command could not reach its edge.
#[derive(Debug, Error)]
pub(crate) enum RelayError {
    /// No control-plane replica took it in time: the edge has no command stream anywhere.
    #[error("edge {0} is not connected to any control-plane process")]
    Unreachable(String),
    /// Commands pile up for the edge; nobody is taking them.
    #[error("edge {edge_id} already has {open} commands waiting")]
    Full { edge_id: String, open: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends commands to edges, through the database when another replica holds the stream.
#[derive(Clone)]
pub(crate) struct CommandRelay {
    store: Store,
    hub: CommandHub,
    /// This process, as the holder of queued commands' leases.
    holder: String,
    /// Wakes this process's pass: a stream opened here, or a command was queued here.
    wake: Arc<Notify>,
}

impl CommandRelay {
    /// The relay over `hub`'s streams.
    pub(crate) fn new(store: Store, hub: CommandHub) -> Self {
        let wake = hub.attachments();
        Self {
            store,
            hub,
            holder: new_id(),
            wake,
        }
    }

    /// Sends `command` to `edge_id`; `call_id` names the call it acts on, if any, so that it
    /// is dropped as moot once that call has ended.
    pub(crate) async fn deliver(
        &self,
        edge_id: &str,
        command: EdgeCommand,
        call_id: Option<&str>,
    ) -> Result<Delivery, RelayError> {
        if edge_id.is_empty() {
            // A call no edge has taken yet: nothing to queue for.
            return Err(RelayError::Unreachable(edge_id.to_owned()));
        }
        if self.hub.send(edge_id, command.clone()).await.is_ok() {
            return Ok(Delivery::Sent);
        }
        let created_ms = now_ms();
        let queued = NewEdgeCommand {
            id: command.id.clone(),
            edge_id: edge_id.to_owned(),
            kind: kind_of(&command).to_owned(),
            call_id: call_id.map(str::to_owned),
            command: command.encode_to_vec(),
            created_ms,
            expires_ms: created_ms.saturating_add(COMMAND_TTL_MS),
        };
        self.store
            .queue_edge_command(&queued, MAX_OPEN_PER_EDGE)
            .await
            .map_err(|e| match e {
                QueueError::Full { edge_id, open } => RelayError::Full { edge_id, open },
                QueueError::Store(e) => RelayError::Store(e),
            })?;
        // The edge may have connected here since.
        self.wake.notify_one();
        let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
        loop {
            match self.store.edge_command_outcome(&queued.id).await? {
                Some(CommandOutcome::Sent) => return Ok(Delivery::Relayed),
                Some(CommandOutcome::Moot) => return Ok(Delivery::Moot),
                Some(CommandOutcome::Expired | CommandOutcome::Withdrawn) => {
                    return Err(RelayError::Unreachable(edge_id.to_owned()))
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        if self
            .store
            .close_edge_command(&queued.id, None, CommandOutcome::Withdrawn, now_ms())
            .await?
        {
            return Err(RelayError::Unreachable(edge_id.to_owned()));
        }
        Ok(match self.store.edge_command_outcome(&queued.id).await? {
            Some(CommandOutcome::Moot) => Delivery::Moot,
            Some(CommandOutcome::Sent) => Delivery::Relayed,
            _ => Delivery::InHand,
        })
    }

    /// The answer the edge gave to the command `id` that another replica sent it (see
    /// [`Delivery::Relayed`]), as that replica kept it; waits for it without end, so the
    /// caller bounds the wait.
    pub(crate) async fn answer(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        loop {
            if let Some(answer) = self.store.edge_command_answer(id).await? {
                return Ok(answer);
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// Hands the new outbound call `call_id` (its row names `edge_id`) to its edge with
    /// `command`, a `PlaceCall`: on the stream when it is here, else through the call's row,
    /// which the replica holding the stream hands over (`retry.rs`).
    pub(crate) async fn place(
        &self,
        edge_id: &str,
        call_id: &str,
        command: EdgeCommand,
    ) -> Result<Delivery, RelayError> {
        if self.hub.send(edge_id, command).await.is_ok() {
            return Ok(Delivery::Sent);
        }
        self.store
            .wait_for_first_placement(call_id, now_ms())
            .await?;
        let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
        while tokio::time::Instant::now() < deadline {
            if !self.store.placement_waiting(call_id).await? {
                return Ok(Delivery::Sent);
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        if self
            .store
            .withdraw_first_placement(call_id, now_ms())
            .await?
        {
            return Err(RelayError::Unreachable(edge_id.to_owned()));
        }
        Ok(if self.store.placement_waiting(call_id).await? {
            Delivery::InHand
        } else {
            Delivery::Sent
        })
    }

    /// Sends the commands queued for the edges connected here, every [`PASS_PERIOD`] and when
    /// woken, and sweeps closed ones, until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(PASS_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = 0_i64;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
                () = self.wake.notified() => {}
            }
            let now = now_ms();
            if let Err(e) = self.pass(now).await {
                tracing::warn!(error = %e, "could not send the commands queued for this process's edges; trying again");
            }
            if now.saturating_sub(last_sweep) >= SWEEP_EVERY_MS {
                last_sweep = now;
                match self
                    .store
                    .sweep_edge_commands(now, now.saturating_sub(KEEP_CLOSED_MS), SWEEP_BATCH)
                    .await
                {
                    Ok((expired, _)) if expired > 0 => {
                        tracing::warn!(expired, "edge commands expired before any control-plane process could send them");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not sweep the edge command outbox"),
                }
            }
        }
    }

    /// One look at the commands queued for the edges connected here at `now`.
    pub(crate) async fn pass(&self, now: i64) -> Result<(), StoreError> {
        for edges in self.hub.connected_edges().chunks(EDGES_PER_QUERY) {
            for queued in self.store.queued_edge_commands(edges, now, BATCH).await? {
                if !self
                    .store
                    .lease_edge_command(&queued.id, &self.holder, now, COMMAND_LEASE_MS)
                    .await?
                {
                    continue;
                }
                let id = &queued.id;
                if queued.call_ended {
                    tracing::info!(command = %id, kind = %queued.kind, edge = %queued.edge_id, "queued command's call has ended; not sent");
                    self.store
                        .close_edge_command(id, Some(&self.holder), CommandOutcome::Moot, now)
                        .await?;
                    continue;
                }
                let Ok(command) = EdgeCommand::decode(queued.command.as_slice()) else {
                    tracing::warn!(command = %id, "a queued edge command that does not decode; dropped");
                    self.store
                        .close_edge_command(id, Some(&self.holder), CommandOutcome::Expired, now)
                        .await?;
                    continue;
                };
                match self.hub.send(&queued.edge_id, command).await {
                    Ok(()) => {
                        self.store
                            .close_edge_command(id, Some(&self.holder), CommandOutcome::Sent, now)
                            .await?;
                        tracing::info!(command = %id, kind = %queued.kind, edge = %queued.edge_id, "queued command sent to its edge");
                    }
                    Err(e) => {
                        tracing::info!(command = %id, error = %e, "edge went away before its queued command; left for its next stream");
                        self.store.release_edge_command(id, &self.holder).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a command asks, for the outbox's `kind`.
fn kind_of(command: &EdgeCommand) -> &'static str {
    match &command.command {
        Some(Command::Drain(_)) => "drain",
        Some(Command::HangupCall(_)) => "hangup",
        Some(Command::PlaceCall(_)) => "place_call",
        Some(Command::Legs(_)) => "legs",
        Some(Command::RenewNow(_)) => "renew_now",
        Some(Command::TestTrunk(_)) => TEST_TRUNK_KIND,
        Some(Command::Revocations(_)) => "revocations",
        None => "empty",
    }
}
