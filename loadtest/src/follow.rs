//! Sending new calls only where the cluster says they can go, as a carrier fed by the cluster's
//! view would (`--follow-cluster` with `--dev-json`): a watcher on a thread of its own asks
//! every edge of `dev.json` for its `GET /cluster` every [`POLL`], and a target edge takes new
//! calls only while every edge that answered (itself included) lists its newest run `alive`
//! and not `draining`. A draining, restarting or not yet ready edge (one without its
//! configuration or not yet joined gossips itself as not taking calls) is skipped; it is
//! chosen again once every edge agrees it is back. Calls in flight are not touched: an INVITE
//! sent just before a drain is the cluster's to redirect.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::failover::{DevInfo, Targets};

/// How often every edge is asked.
pub const POLL: Duration = Duration::from_millis(100);

/// Whether the edge `id` takes new calls, from the `GET /cluster` answers of the edges that
/// answered; `None` when none did (nothing learnt: left as it was).
pub fn takes_calls(id: &str, views: &[Value]) -> Option<bool> {
    if views.is_empty() {
        return None;
    }
    Some(views.iter().all(|view| {
        view["members"]
            .as_array()
            .and_then(|members| {
                members
                    .iter()
                    .filter(|m| m["id"] == id)
                    .max_by_key(|m| m["generation"].as_u64().unwrap_or(0))
            })
            .is_some_and(|m| m["state"] == "alive" && m["draining"] == false)
    }))
}

/// The watcher: stopped by [`ClusterFollower::stop`] or the run's cancellation.
pub struct ClusterFollower {
    stop: CancellationToken,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ClusterFollower {
    /// Starts following `dev`'s edges, marking `targets` as they come and go.
    pub fn spawn(dev: DevInfo, targets: Arc<Targets>, cancel: &CancellationToken) -> Self {
        let stop = cancel.child_token();
        let watch_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cluster-follow".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(follow(dev, targets, watch_stop)),
                    Err(e) => tracing::warn!(error = %e, "no runtime for the cluster follower"),
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "no thread for the cluster follower"))
            .ok();
        Self {
            stop,
            thread: std::sync::Mutex::new(thread),
        }
    }

    /// Stops the watcher and waits for its thread.
    pub async fn stop(&self) {
        self.stop.cancel();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

async fn follow(dev: DevInfo, targets: Arc<Targets>, stop: CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_default();
    let mut taking: Vec<Option<bool>> = vec![None; dev.edges.len()];
    while !stop.is_cancelled() {
        let mut views = Vec::with_capacity(dev.edges.len());
        for edge in &dev.edges {
            let view = async {
                http.get(format!("{}/cluster", edge.http_url))
                    .send()
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()
            };
            if let Some(view) = view.await {
                views.push(view);
            }
        }
        for (edge, was) in dev.edges.iter().zip(taking.iter_mut()) {
            let now = takes_calls(&edge.id, &views);
            if now.is_some() && now != *was {
                let takes = now == Some(true);
                targets.set_dead(edge.sip_addr, !takes);
                eprintln!(
                    "cluster view: {} {}",
                    edge.id,
                    if takes { "takes calls" } else { "skipped" }
                );
                *was = now;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_edge_takes_calls_only_while_every_view_has_its_newest_run_alive_and_not_draining() {
        let alive = json!({"members": [
            {"id": "c", "generation": 1, "state": "down", "draining": false},
            {"id": "c", "generation": 2, "state": "alive", "draining": false}]});
        let draining = json!({"members": [
            {"id": "c", "generation": 2, "state": "alive", "draining": true}]});
        let absent = json!({"members": []});
        assert_eq!(
            takes_calls("c", &[alive.clone(), alive.clone()]),
            Some(true)
        );
        assert_eq!(
            takes_calls("c", &[alive.clone(), draining]),
            Some(false),
            "one view says draining (or not ready)"
        );
        assert_eq!(takes_calls("c", &[alive, absent]), Some(false));
        assert_eq!(takes_calls("c", &[]), None, "nobody answered");
    }
}
