//! `POST /v1/providers/{id}/test` (editor): checks a provider now, with its stored
//! credentials, and answers what happened. A SIP trunk is checked by an online edge of its
//! regions (`TestTrunk` over the command stream, answered by `ReportTrunkTest`; through the
//! replica holding the edge's stream when that is another, the answer coming back through the
//! database: `grpc/relay.rs`): an OPTIONS over UDP or TCP, a connection over TLS. No such edge,
//! or no replica holding its stream, is a 503; no answer in time a 504. A Twilio account is fetched from the control plane
//! (`GET /2010-04-01/Accounts/{sid}.json` at its `api_base_url`), through the egress guard
//! ([`freya_edge::egress`], under `webhooks.allow_private_targets`), and never to a link-local
//! or cloud-metadata address whatever that switch says; a 401/403 reads "the key was refused",
//! and no answer, log line or error carries the key. The outcome becomes the provider's last
//! test, which its `health` shows (`provider_health.rs`).
//!
//! Every test makes an outbound request on the caller's say-so, so a hostile API client must not
//! turn it into a flood of a third party: one test per provider per [`PER_PROVIDER_INTERVAL`]
//! and [`PER_WORKSPACE_PER_MINUTE`] per workspace, 429 with `Retry-After` beyond
//! ([`TestLimits`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::{retry_seconds, Problem};
use super::AppState;
use crate::grpc::Delivery;
use crate::store::Provider;
use crate::trunk_health::ProviderCheck;
use freya_edge::egress::{Egress, EgressConfig};
use freya_proto::v1::{edge_command::Command, EdgeCommand, TestTrunk, TrunkTestResult};
use freya_shared::ids::{new_id, now_ms, rfc3339};
use freya_shared::model::{EdgeStatus, FieldError, ProviderSpec, TwilioAccountSpec};
use prost::Message;

/// Least time between two tests of one provider.
pub(crate) const PER_PROVIDER_INTERVAL: Duration = Duration::from_secs(5);
/// Most tests one workspace may run in a minute.
pub(crate) const PER_WORKSPACE_PER_MINUTE: usize = 20;
/// How long an edge has to answer a `TestTrunk` (its own timeout is `sip.options_timeout_ms`,
/// 5 s by default, after up to 3 s of name resolution).
const EDGE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider's API has to answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Providers and workspaces remembered by the limits before the idle ones are swept.
const SWEEP_AT: usize = 10_000;

/// One check a test made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderCheckView {
    /// `sip_options` (UDP/TCP), `tls_connect`, or `twilio_account`.
    name: String,
    ok: bool,
    /// The edge that made it (a SIP trunk's check).
    #[serde(skip_serializing_if = "Option::is_none")]
    edge: Option<String>,
    /// The SIP or HTTP status that came back, if any.
    status: Option<u16>,
    latency_ms: Option<u32>,
    detail: String,
}

/// What `POST /v1/providers/{id}/test` found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderTestResult {
    /// Whether the provider answered as it should (credentials accepted, trunk reachable).
    ok: bool,
    /// When the test ended (RFC 3339).
    checked_at: String,
    latency_ms: Option<u32>,
    /// What happened, in words (the reason when not ok).
    detail: String,
    checks: Vec<ProviderCheckView>,
}

impl ProviderTestResult {
    fn of(name: &str, check: &ProviderCheck) -> Self {
        Self {
            ok: check.ok,
            checked_at: rfc3339(check.checked_at_ms),
            latency_ms: check.latency_ms,
            detail: check.detail.clone(),
            checks: vec![ProviderCheckView {
                name: name.to_owned(),
                ok: check.ok,
                edge: check.edge_id.clone(),
                status: check.status,
                latency_ms: check.latency_ms,
                detail: check.detail.clone(),
            }],
        }
    }
}

/// The per-provider and per-workspace limits on tests, as plain values driven with `now`.
#[derive(Debug, Default)]
pub(crate) struct TestLimits {
    /// When each provider (`workspace/provider`) was last tested.
    last_by_provider: HashMap<String, Instant>,
    /// When each workspace's tests of the last minute ran, oldest first.
    by_workspace: HashMap<String, VecDeque<Instant>>,
}

impl TestLimits {
    /// Admits a test of `provider_id` in `workspace_id` at `now`, or says how long to wait.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        workspace_id: &str,
        provider_id: &str,
    ) -> Result<(), Duration> {
        const MINUTE: Duration = Duration::from_secs(60);
        if self.last_by_provider.len() > SWEEP_AT {
            self.last_by_provider
                .retain(|_, at| now.saturating_duration_since(*at) < PER_PROVIDER_INTERVAL);
        }
        if self.by_workspace.len() > SWEEP_AT {
            self.by_workspace.retain(|_, runs| {
                runs.back()
                    .is_some_and(|at| now.saturating_duration_since(*at) < MINUTE)
            });
        }
        let provider = format!("{workspace_id}/{provider_id}");
        if let Some(last) = self.last_by_provider.get(&provider) {
            let since = now.saturating_duration_since(*last);
            if since < PER_PROVIDER_INTERVAL {
                return Err(PER_PROVIDER_INTERVAL - since);
            }
        }
        let runs = self
            .by_workspace
            .entry(workspace_id.to_owned())
            .or_default();
        while runs
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= MINUTE)
        {
            runs.pop_front();
        }
        if runs.len() >= PER_WORKSPACE_PER_MINUTE {
            let oldest = runs.front().copied().unwrap_or(now);
            return Err(MINUTE.saturating_sub(now.saturating_duration_since(oldest)));
        }
        runs.push_back(now);
        self.last_by_provider.insert(provider, now);
        Ok(())
    }
}

/// What the test endpoint keeps between requests: the guarded HTTP client and the limits.
pub(crate) struct ProviderTests {
    egress: Egress,
    limits: Mutex<TestLimits>,
}

impl ProviderTests {
    /// The tester; `allow_private_targets` is `webhooks.allow_private_targets` (the same
    /// switch for every customer URL the control plane requests).
    pub(crate) fn new(allow_private_targets: bool) -> anyhow::Result<Self> {
        let egress = Egress::from_builder(
            &EgressConfig {
                allow_private_targets,
                proxy: None,
            },
            reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .connect_timeout(HTTP_TIMEOUT)
                .user_agent(concat!("freya/", env!("CARGO_PKG_VERSION"))),
            "webhooks.allow_private_targets",
        )?;
        Ok(Self {
            egress,
            limits: Mutex::default(),
        })
    }

    fn admit(&self, workspace_id: &str, provider_id: &str) -> Result<(), Duration> {
        let mut limits = self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limits.admit(Instant::now(), workspace_id, provider_id)
    }
}

fn too_many(wait: Duration) -> Response {
    Problem::too_many_requests(
        "Too many requests",
        format!(
            "providers are tested at most once per {} s each and {PER_WORKSPACE_PER_MINUTE} times a minute per workspace; retry in {} s",
            PER_PROVIDER_INTERVAL.as_secs(),
            retry_seconds(wait)
        ),
        wait,
    )
}

#[utoipa::path(
    post,
    path = "/v1/providers/{id}/test",
    tag = "providers",
    summary = "Check a provider now with its stored credentials (editor)",
    description = "A SIP trunk is sent an OPTIONS (a connection over TLS) by an online edge of its \
        regions; a Twilio account is fetched from its REST API. The outcome also becomes the \
        provider's `health.last_test` (and a Twilio account's health). At most one test per \
        provider every 5 s and 20 per workspace a minute.",
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 200, description = "The test ran (see `ok`)", body = ProviderTestResult),
        (status = 404, description = "No provider has that id in this workspace"),
        (status = 422, description = "The account's `api_base_url` may not be requested"),
        (status = 429, description = "Tested too often; see Retry-After"),
        (status = 503, description = "No edge that could test the trunk is online here"),
        (status = 504, description = "The edge did not answer in time")
    )
)]
pub(super) async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if id.is_empty() || id.len() > 64 {
        return Err(Problem::not_found());
    }
    let provider = state.store.provider_with_secret(&caller.scope, &id).await?;
    if let Err(wait) = state
        .provider_tests
        .admit(&caller.scope.workspace_id, &provider.id)
    {
        return Ok(too_many(wait));
    }
    let (name, check) = match &provider.spec {
        ProviderSpec::SipTrunk(_) => test_trunk(&state, &provider).await?,
        ProviderSpec::Twilio(account) => (
            "twilio_account",
            check_twilio(&state.provider_tests.egress, account).await?,
        ),
    };
    state
        .trunk_health
        .record_test(&provider.id, check.clone(), now_ms());
    tracing::info!(provider = %provider.id, ok = check.ok, detail = %check.detail, "provider tested");
    Ok(Json(ProviderTestResult::of(name, &check)).into_response())
}

/// Asks an edge to test the trunk and waits for its answer: an edge whose stream is here if
/// any, else any online edge of the trunk's regions, through whichever replica holds its
/// stream (`grpc/relay.rs`), the answer coming back through the database.
async fn test_trunk(
    state: &AppState,
    provider: &Provider,
) -> Result<(&'static str, ProviderCheck), Problem> {
    let edges = state.store.edges(state.offline_after_ms).await?;
    let serving: Vec<_> = edges
        .into_iter()
        .filter(|e| e.status != EdgeStatus::Offline && provider.spec.serves(&e.region))
        .collect();
    let regions = match provider.spec.regions() {
        [] => "any region".to_owned(),
        list => format!("its regions ({})", list.join(", ")),
    };
    let here = |e: &&crate::store::EdgeRecord| state.commands.is_connected(&e.id);
    let online = |e: &&crate::store::EdgeRecord| e.status == EdgeStatus::Online;
    let Some(edge) = serving
        .iter()
        .find(|e| online(e) && here(e))
        .or_else(|| serving.iter().find(here))
        .or_else(|| serving.iter().find(online))
    else {
        return Err(Problem::unavailable(format!(
            "no edge is online in {regions}: a SIP trunk is tested by an edge"
        )));
    };
    let command_id = new_id();
    let Some(answer_here) = state
        .trunk_health
        .expect_test(&command_id, &edge.id, &provider.id)
    else {
        return Err(Problem::unavailable("too many tests are in progress"));
    };
    let command = EdgeCommand {
        id: command_id.clone(),
        command: Some(Command::TestTrunk(TestTrunk {
            provider_id: provider.id.clone(),
        })),
    };
    let delivery = match state.relay.deliver(&edge.id, command, None).await {
        Ok(delivery) => delivery,
        Err(e) => {
            state.trunk_health.forget_test(&command_id);
            return Err(Problem::unavailable(e.to_string()));
        }
    };
    let name = match &provider.spec {
        ProviderSpec::SipTrunk(t) if t.transport == freya_shared::model::SipTransport::Tls => {
            "tls_connect"
        }
        _ => "sip_options",
    };
    // The edge answers the replica holding its stream: this one (straight to `answer_here`),
    // or another, which keeps the answer in the command's row.
    let answer = async {
        if delivery == Delivery::Sent {
            return answer_here.await.ok();
        }
        tokio::select! {
            check = answer_here => check.ok(),
            relayed = relayed_answer(state, &command_id, &edge.id, &provider.id) => relayed,
        }
    };
    match tokio::time::timeout(EDGE_ANSWER_TIMEOUT, answer).await {
        Ok(Some(check)) => Ok((name, check)),
        _ => {
            state.trunk_health.forget_test(&command_id);
            Err(Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway timeout",
                format!(
                    "edge `{}` did not report the test within {} s",
                    edge.id,
                    EDGE_ANSWER_TIMEOUT.as_secs()
                ),
            ))
        }
    }
}

/// The answer `edge_id` gave to the test `command_id` of `provider_id` through another
/// replica, once it is in the command's row; `None` when it is not one (never, from the
/// replica's checks) or the database fails.
async fn relayed_answer(
    state: &AppState,
    command_id: &str,
    edge_id: &str,
    provider_id: &str,
) -> Option<ProviderCheck> {
    let bytes = match state.relay.answer(command_id).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(command = %command_id, error = %e, "could not read a trunk test's answer");
            return None;
        }
    };
    let Ok(result) = TrunkTestResult::decode(bytes.as_slice()) else {
        tracing::warn!(command = %command_id, "a trunk test's answer that does not decode");
        return None;
    };
    if result.edge_id != edge_id || result.provider_id != provider_id {
        tracing::warn!(command = %command_id, "a trunk test's answer about another edge or trunk");
        return None;
    }
    Some(crate::grpc::check_of(&result))
}

/// Why `url` is never requested, whatever the egress switch says: link-local addresses and
/// the cloud metadata services' names (credentials for the machine live there).
fn metadata_target(url: &reqwest::Url) -> Option<String> {
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let link_local = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_link_local(),
        Ok(IpAddr::V6(v6)) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
        Err(_) => false,
    };
    let metadata_name = matches!(
        host.trim_end_matches('.'),
        "metadata" | "metadata.google.internal" | "instance-data" | "instance-data.ec2.internal"
    );
    (link_local || metadata_name)
        .then(|| format!("`{host}` is a link-local or cloud-metadata address"))
}

/// Fetches the account with its stored credentials.
async fn check_twilio(
    egress: &Egress,
    account: &TwilioAccountSpec,
) -> Result<ProviderCheck, Problem> {
    let refuse = |reason: String| {
        Problem::invalid(vec![FieldError::new(
            "api_base_url",
            format!("is not requested: {reason}"),
        )])
    };
    let url = format!(
        "{}/2010-04-01/Accounts/{}.json",
        account.api_base_url.trim_end_matches('/'),
        account.account_sid
    );
    let parsed = egress.check_url(&url).map_err(|e| refuse(e.to_string()))?;
    if let Some(reason) = metadata_target(&parsed) {
        return Err(refuse(reason));
    }
    let Some(token) = account.auth_token.as_deref() else {
        return Ok(finished(false, None, None, "no auth token is stored"));
    };
    let started = Instant::now();
    let sent = egress
        .client()
        .get(parsed)
        .basic_auth(&account.account_sid, Some(token))
        .send()
        .await;
    let latency = Some(
        u32::try_from(started.elapsed().as_millis())
            .unwrap_or(u32::MAX)
            .max(1),
    );
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            // reqwest's error names the URL (no credentials in it) and the cause.
            let why = if error.is_timeout() {
                format!("no answer within {} s", HTTP_TIMEOUT.as_secs())
            } else {
                format!(
                    "the request failed: {}",
                    error.without_url().to_string().replace(token, "********")
                )
            };
            return Ok(finished(false, latency, None, why));
        }
    };
    let status = response.status().as_u16();
    let (ok, detail) = match status {
        200..=299 => {
            let active = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body.get("status")?.as_str().map(str::to_owned));
            match active.as_deref() {
                Some("active") | None => (true, format!("the account answered ({status})")),
                Some(other) => (false, format!("the account is {other}")),
            }
        }
        401 | 403 => (false, format!("the key was refused ({status})")),
        404 => (false, "no such account at this API (404)".to_owned()),
        _ => (false, format!("the API answered {status}")),
    };
    Ok(finished(ok, latency, Some(status), detail))
}

fn finished(
    ok: bool,
    latency_ms: Option<u32>,
    status: Option<u16>,
    detail: impl Into<String>,
) -> ProviderCheck {
    ProviderCheck {
        ok,
        checked_at_ms: now_ms(),
        latency_ms,
        detail: detail.into(),
        edge_id: None,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_tested_once_per_interval() {
        let mut limits = TestLimits::default();
        let start = Instant::now();
        assert!(limits.admit(start, "w", "p").is_ok());
        let wait = limits
            .admit(start + Duration::from_secs(1), "w", "p")
            .expect_err("too soon");
        assert_eq!(wait, Duration::from_secs(4));
        // Another provider of the workspace is not held up.
        assert!(limits
            .admit(start + Duration::from_secs(1), "w", "q")
            .is_ok());
        assert!(limits
            .admit(start + PER_PROVIDER_INTERVAL, "w", "p")
            .is_ok());
    }

    #[test]
    fn a_workspace_runs_a_bounded_number_of_tests_a_minute() {
        let mut limits = TestLimits::default();
        let start = Instant::now();
        for i in 0..PER_WORKSPACE_PER_MINUTE {
            assert!(limits.admit(start, "w", &format!("p{i}")).is_ok());
        }
        let wait = limits
            .admit(start + Duration::from_secs(10), "w", "another")
            .expect_err("over the workspace's limit");
        assert_eq!(wait, Duration::from_secs(50));
        // Other workspaces are not affected; a minute later the workspace may test again.
        assert!(limits.admit(start, "v", "p0").is_ok());
        assert!(limits
            .admit(start + Duration::from_secs(60), "w", "another")
            .is_ok());
    }

    #[test]
    fn metadata_and_link_local_targets_are_named() {
        let named = |url: &str| metadata_target(&reqwest::Url::parse(url).expect("url"));
        assert!(named("http://169.254.169.254/latest").is_some());
        assert!(named("http://[fe80::1]:8080").is_some());
        assert!(named("http://[fd00:ec2::254]").is_some());
        assert!(named("http://metadata.google.internal/computeMetadata").is_some());
        assert!(named("https://api.twilio.com").is_none());
        assert!(named("http://127.0.0.1:9000").is_none());
    }
}
