//! The command stream: the control plane asks this edge to drain, hang up or place a call (once
//! per call id, however often it asks), to work the legs of a call (each leg command and
//! hang-up carried out once per command id, however often it comes: `recent_ids.rs`), to
//! renew its certificate (`RenewNow`, to the renewal task), or to test a trunk (`TestTrunk`, a
//! task: `trunk_test.rs`), and hands it the revocation list (on opening and on every change).
//!
//! A call to place is resolved here against the cached configuration — the agent, and the
//! workspace's providers usable from this region, tried strictly in priority order whatever
//! their kind: a Twilio account is asked to place it over REST (the answered call then streams
//! to this edge); a run of SIP trunks, their host names looked up, goes to the SIP task as a
//! [`SipCommand`], which hands back a failure worth failing over when providers remain. What
//! can be refused before any attempt (unknown agent, no provider) is recorded as `call.failed`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::placement;
use super::recent_ids::RecentIds;
use super::LinkContext;
use crate::call::core::{AgentMode, LegCommand, LegId};
use crate::mesh::host::DialGrant;
use crate::mesh::LegKey;
use crate::sip::digest::Credentials;
use crate::sip::peer::Peer;
use crate::sip::sdp::SrtpPolicy;
use crate::sip::transport::{PlaceCall, SipCommand};
use crate::sip::uac::Trunk;
use crate::state::EdgeState;
use crate::twilio::rest::{self, TwilioRestError};
use crate::twilio::ticket::StreamTicket;
use crate::twilio::TwilioEdge;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::leg_command::Action;
use freya_proto::v1::CommandsRequest;
use freya_shared::model::call_payloads::{AttemptOutcome, CallStarted, ProviderAttempt};
use freya_shared::model::outbound_proxy::parse_proxy_uri;
use freya_shared::model::{
    CallEvent, CallEventData, FailReason, Placement, ProviderSpec, SipTransport, SipTrunkSpec,
    TrunkSrtp, TwilioAccountSpec,
};
use freya_shared::snapshot::{AgentConfig, ProviderConfig};

/// How long a trunk's host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) async fn run(
    link: LinkContext,
    state: EdgeState,
    events: mpsc::Sender<CallEvent>,
    sip: mpsc::Sender<SipCommand>,
    twilio: TwilioEdge,
    grants: Option<mpsc::Sender<DialGrant>>,
    revocations: crate::trust::Revocations,
) {
    let mut commands = link.follow("receiving commands", "opening the command stream", || {
        let request = CommandsRequest {
            edge_id: link.edge_id.to_string(),
        };
        let mut client = link.client.clone();
        async move { client.commands(request).await }
    });
    // One command stream per edge process: one memory of placements, one of leg commands.
    let mut placed = RecentIds::default();
    let mut carried_out = RecentIds::default();
    while let Some(command) = commands.next().await {
        if seen_before(&mut carried_out, &command) {
            // Sent again by another replica (the first died before recording the send).
            tracing::info!(command = %command.id, "asked again to carry out a command this edge already carried out; ignored");
            continue;
        }
        match command.command {
            Some(Command::RenewNow(_)) => {
                tracing::info!("certificate renewal requested by the control plane");
                link.renew_now.notify_one();
            }
            Some(Command::Revocations(list)) => revoked(&revocations, list),
            Some(Command::TestTrunk(test)) => {
                super::trunk_test::spawn(&link, &state, command.id, test);
            }
            Some(Command::PlaceCall(place))
                if !placed.first_ask(&place.call_id, std::time::Instant::now()) =>
            {
                // Sent again by another control-plane replica (the first died before recording
                // the send): this edge placed it or is placing it, and reports that call alone.
                tracing::info!(call = %place.call_id, "asked again to place a call this edge already placed; ignored");
            }
            other => handle(&state, &events, &sip, &twilio, grants.as_ref(), other).await,
        }
    }
}

/// Whether `command` is to be carried out once however often it comes (a leg command, as a
/// dial rings a callee; a hang-up) and was carried out already. A placement is kept once by
/// its call id instead; a drain, a renewal or a trunk test is harmless twice.
fn seen_before(carried_out: &mut RecentIds, command: &freya_proto::v1::EdgeCommand) -> bool {
    matches!(
        command.command,
        Some(Command::Legs(_) | Command::HangupCall(_))
    ) && !command.id.is_empty()
        && !carried_out.first_ask(&command.id, std::time::Instant::now())
}

async fn handle(
    state: &EdgeState,
    events: &mpsc::Sender<CallEvent>,
    sip: &mpsc::Sender<SipCommand>,
    twilio: &TwilioEdge,
    grants: Option<&mpsc::Sender<DialGrant>>,
    command: Option<Command>,
) {
    match command {
        Some(Command::Drain(drain)) => {
            tracing::info!(
                draining = drain.draining,
                leave = drain.leave,
                "drain requested by the control plane"
            );
            if drain.draining && drain.leave {
                state.request_leave();
            } else {
                state.set_draining(drain.draining);
            }
        }
        Some(Command::HangupCall(hangup)) => {
            let command = SipCommand::Hangup {
                call_id: hangup.call_id,
            };
            if sip.send(command).await.is_err() {
                tracing::warn!("hang-up requested but the SIP task is gone");
            }
        }
        Some(Command::PlaceCall(place)) => {
            tracing::info!(call = %place.call_id, to = %freya_shared::redact::MaskedNumber(&place.to), "outbound call requested");
            // Full or draining: refused before any provider is tried, so the control plane
            // places it on another edge and the callee's phone rings once.
            if let Some(reason) = placement::refusal(state) {
                tracing::info!(call = %place.call_id, %reason, "outbound call refused");
                let refused = placement::failed(&place, reason, Placement::Edge, None);
                let _ = events.send(refused).await;
                return;
            }
            let snapshot = state.snapshot();
            let Some(agent) = snapshot
                .agents
                .iter()
                .find(|a| a.id == place.agent_id && a.workspace_id == place.workspace_id)
                .cloned()
            else {
                tracing::warn!(call = %place.call_id, agent = %place.agent_id, "outbound call for an agent this edge does not know");
                let reason = FailReason::parse("unknown_agent");
                let _ = events
                    .send(placement::failed(&place, reason, Placement::Request, None))
                    .await;
                return;
            };
            let providers: Vec<ProviderConfig> = snapshot
                .providers_for(&place.workspace_id)
                .into_iter()
                .cloned()
                .collect();
            // Placing may take as long as the trunks ring: it runs beside the command stream,
            // which must stay free for hang-ups.
            tokio::spawn(place_in_order(
                place,
                agent,
                providers,
                events.clone(),
                sip.clone(),
                twilio.clone(),
            ));
        }
        Some(Command::Legs(legs)) => {
            if let Some(Action::Host(host)) = &legs.action {
                let Some(grant) = dial_grant(&legs.call_id, host) else {
                    tracing::warn!(call = %legs.call_id, "ignoring a leg grant this edge cannot read");
                    return;
                };
                tracing::info!(call = %legs.call_id, leg = host.leg, home = %host.home_edge, "granted to dial a leg for another edge");
                match grants {
                    // Full: the home's request will be refused as ungranted (and counted).
                    Some(grants) => {
                        if grants.try_send(grant).is_err() {
                            tracing::warn!(call = %legs.call_id, "leg grant dropped: the mesh is busy");
                        }
                    }
                    None => {
                        tracing::warn!(call = %legs.call_id, "leg grant but this edge runs no mesh")
                    }
                }
                return;
            }
            let Some(command) = leg_command(&legs) else {
                tracing::warn!(call = %legs.call_id, "ignoring a leg command this edge cannot read");
                return;
            };
            let command = SipCommand::Legs {
                call_id: legs.call_id,
                command,
            };
            if sip.send(command).await.is_err() {
                tracing::warn!("leg command but the SIP task is gone");
            }
        }
        // Taken by the command stream itself, before this.
        Some(Command::RenewNow(_)) => {}
        Some(Command::TestTrunk(_)) => {}
        // Taken before `handle` (see `run`).
        Some(Command::Revocations(_)) => {}
        None => tracing::warn!("ignoring an empty command"),
    }
}

/// Keeps the control plane's new revocation list for the mesh and gossip.
fn revoked(revocations: &crate::trust::Revocations, list: freya_proto::v1::Revocations) {
    let list: Vec<crate::trust::RevokedCertificate> = list
        .certificates
        .into_iter()
        .map(|c| crate::trust::RevokedCertificate {
            serial: c.serial.to_lowercase(),
            edge_id: c.edge_id,
        })
        .collect();
    tracing::info!(
        revoked = list.len(),
        "the control plane's revocation list arrived"
    );
    revocations.replace(list);
}

/// A leg command from the wire: leg numbers beyond 255 or an unknown agent mode are not one.
fn leg_command(legs: &freya_proto::v1::LegCommand) -> Option<LegCommand> {
    let leg = |n: u32| u8::try_from(n).ok().map(LegId);
    Some(match legs.action.as_ref()? {
        Action::Dial(dial) => LegCommand::Dial {
            leg: leg(dial.leg)?,
            to: dial.to.clone(),
            edge: Some(dial.edge.clone()).filter(|e| !e.is_empty()),
            whisper: dial.whisper.clone(),
        },
        Action::Hangup(hangup) => LegCommand::Hangup {
            leg: leg(hangup.leg)?,
        },
        Action::Bridge(bridge) => LegCommand::Bridge {
            legs: bridge.legs.iter().map(|n| leg(*n)).collect::<Option<_>>()?,
            agent: match bridge.agent.as_str() {
                "muted" => AgentMode::Muted,
                "listening" => AgentMode::Listening,
                "whisper" => AgentMode::Whisper(leg(bridge.whisper_to?)?),
                _ => return None,
            },
        },
        Action::Unbridge(_) => LegCommand::Unbridge,
        // A grant for the mesh, not a command for a call here (see `handle`).
        Action::Host(_) => return None,
    })
}

/// The control plane's grant to dial a leg for a call on another edge, for the mesh's gate.
fn dial_grant(call_id: &str, host: &freya_proto::v1::HostLeg) -> Option<DialGrant> {
    Some(DialGrant {
        key: LegKey {
            call: uuid::Uuid::parse_str(call_id).ok()?,
            leg: u16::try_from(host.leg).ok().filter(|l| *l <= 255)?,
        },
        workspace: host.workspace_id.clone(),
        to: host.to.clone(),
        home: host.home_edge.clone(),
    })
}

/// Tries the providers strictly in priority order, whatever their kind: a Twilio account is
/// asked over REST; a run of SIP trunks goes to the SIP task, which fails over between them and
/// hands back a failure worth failing over when providers remain after them. Every attempt is
/// carried into the call's record (`attempts` of `call.started` or `call.failed`).
async fn place_in_order(
    place: freya_proto::v1::PlaceCall,
    agent: AgentConfig,
    providers: Vec<ProviderConfig>,
    events: mpsc::Sender<CallEvent>,
    sip: mpsc::Sender<SipCommand>,
    twilio: TwilioEdge,
) {
    let fail = |reason: &str, placement: Placement, attempts: Vec<ProviderAttempt>| {
        placement::failed(&place, FailReason::parse(reason), placement, Some(attempts))
    };
    // The control plane checks these too; an edge never puts anything else in a SIP URI.
    for (field, user) in [("from", &place.from), ("to", &place.to)] {
        if let Some(problem) = freya_shared::model::sip_user::sip_user_problem(user) {
            tracing::warn!(call = %place.call_id, field, problem, "outbound call refused");
            let reason = format!("invalid_{field}");
            let _ = events
                .send(fail(&reason, Placement::Request, Vec::new()))
                .await;
            return;
        }
    }
    let mut attempts: Vec<ProviderAttempt> = Vec::new();
    let mut rest = providers.as_slice();
    while let Some((provider, tail)) = rest.split_first() {
        if let ProviderSpec::Twilio(account) = &provider.spec {
            rest = tail;
            let (tried_at, tried) = (freya_shared::ids::now_ms(), std::time::Instant::now());
            match place_with_twilio(&twilio, &place, &provider.id, account, &agent.id).await {
                Ok(call_sid) => {
                    tracing::info!(call = %place.call_id, %call_sid, account = %account.name, "outbound call placed through Twilio");
                    let started = CallStarted {
                        direction: Some("outbound".to_owned()),
                        from: Some(place.from.clone()),
                        to: Some(place.to.clone()),
                        agent_id: Some(Some(agent.id.clone())),
                        edge_id: Some(twilio.services.edge_id.to_string()),
                        provider: Some("twilio".into()),
                        provider_id: Some(provider.id.clone()),
                        provider_call_id: Some(call_sid.to_string()),
                        attempts: Some(attempts),
                        ..CallStarted::default()
                    };
                    let started = CallEvent::new(
                        place.call_id.clone(),
                        place.workspace_id.clone(),
                        CallEventData::Started(started),
                    );
                    let _ = events.send(started).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(call = %place.call_id, account = %account.name, error = %e, "Twilio did not take the call; trying the next provider");
                    attempts.push(ProviderAttempt {
                        kind: "twilio".to_owned(),
                        provider_id: provider.id.clone(),
                        provider: account.name.clone(),
                        reason: e.reason().to_owned(),
                        outcome: e.outcome(),
                        started_at_ms: Some(tried_at),
                        duration_ms: Some(elapsed_ms(tried)),
                        extra: Default::default(),
                    });
                }
            }
            continue;
        }
        // The run of SIP trunks up to the next provider of another kind.
        let run = rest
            .iter()
            .position(|p| !matches!(p.spec, ProviderSpec::SipTrunk(_)))
            .unwrap_or(rest.len());
        let (trunk_run, after) = rest.split_at(run);
        rest = after;
        let mut trunks = Vec::with_capacity(trunk_run.len());
        for provider in trunk_run {
            let ProviderSpec::SipTrunk(spec) = &provider.spec else {
                continue;
            };
            match resolve(&provider.id, spec).await {
                Some(trunk) => trunks.push(trunk),
                None => {
                    tracing::warn!(trunk = %spec.name, host = %spec.host, "cannot resolve a trunk's host; skipping it");
                    attempts.push(ProviderAttempt {
                        kind: "sip_trunk".to_owned(),
                        provider_id: provider.id.clone(),
                        provider: spec.name.clone(),
                        reason: "unresolvable_host".to_owned(),
                        outcome: AttemptOutcome::TransportError,
                        started_at_ms: None,
                        duration_ms: None,
                        extra: Default::default(),
                    });
                }
            }
        }
        if trunks.is_empty() {
            continue;
        }
        let (fall_back, fell_back) = if rest.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        };
        let command = SipCommand::PlaceCall(Box::new(PlaceCall {
            call_id: place.call_id.clone(),
            workspace_id: place.workspace_id.clone(),
            agent: agent.clone(),
            from: place.from.clone(),
            to: place.to.clone(),
            trunks,
            earlier_attempts: std::mem::take(&mut attempts),
            fall_back,
        }));
        if sip.send(command).await.is_err() {
            let shutting_down = fail("edge_shutting_down", Placement::Edge, attempts);
            let _ = events.send(shutting_down).await;
            return;
        }
        // The SIP task records the call's end itself unless it hands the failure back.
        match fell_back {
            Some(rx) => match rx.await {
                Ok(back) => attempts = back.attempts,
                Err(_) => return,
            },
            None => return,
        }
    }
    tracing::warn!(call = %place.call_id, workspace = %place.workspace_id, "no usable provider for an outbound call");
    let reason = if attempts.is_empty() {
        "no_trunks"
    } else {
        "providers_failed"
    };
    let placement = placement::after_providers(&attempts);
    let _ = events.send(fail(reason, placement, attempts)).await;
}

/// Asks Twilio to place the call, its answer connected to this edge's media stream with a
/// ticket naming the call and its agent; returns Twilio's call SID.
/// Milliseconds since `since`, for an attempt's duration.
fn elapsed_ms(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn place_with_twilio(
    twilio: &TwilioEdge,
    place: &freya_proto::v1::PlaceCall,
    provider_id: &str,
    account: &TwilioAccountSpec,
    agent_id: &str,
) -> Result<String, TwilioRestError> {
    let ticket = StreamTicket {
        call_id: place.call_id.clone(),
        workspace_id: place.workspace_id.clone(),
        outbound: true,
        from: place.from.clone(),
        to: place.to.clone(),
        agent_id: Some(agent_id.to_owned()),
        call_sid: None,
        provider_id: provider_id.to_owned(),
        edge_id: twilio.services.edge_id.to_string(),
        expires_at_ms: freya_shared::ids::now_ms() + crate::twilio::ticket::OUTBOUND_TICKET_TTL_MS,
    };
    let twiml = twilio.connect_twiml(&ticket);
    let status = twilio.status_url(&ticket);
    rest::create_call(
        &twilio.http,
        account,
        &place.to,
        &place.from,
        &twiml,
        &status,
    )
    .await
}

/// The SIP trunks among `providers` (a workspace's, in priority order), hosts resolved; those
/// that cannot be resolved are skipped. An added leg of a call is dialled through them.
pub(crate) async fn sip_trunks(providers: &[ProviderConfig]) -> Vec<Trunk> {
    let mut trunks = Vec::new();
    for provider in providers {
        if let ProviderSpec::SipTrunk(spec) = &provider.spec {
            match resolve(&provider.id, spec).await {
                Some(trunk) => trunks.push(trunk),
                None => {
                    tracing::warn!(trunk = %spec.name, host = %spec.host, "cannot resolve a trunk's host; skipping it")
                }
            }
        }
    }
    trunks
}

/// A provider as the SIP core calls through it: its host resolved (first address).
pub(crate) async fn resolve(id: &str, spec: &SipTrunkSpec) -> Option<Trunk> {
    // With an outbound proxy, INVITEs go to the proxy rather than the trunk's host.
    let proxy = spec.outbound_proxy.as_deref().map(parse_proxy_uri);
    let (host, port) = match &proxy {
        Some(Ok(p)) => (p.host.as_str(), p.port.unwrap_or(5060)),
        Some(Err(_)) => return None,
        None => (spec.host.trim_matches(['[', ']']), spec.port),
    };
    let addr: SocketAddr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => {
            let lookup = tokio::net::lookup_host((host, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(mut addrs)) => addrs.next()?,
                _ => return None,
            }
        }
    };
    let peer = match spec.transport {
        SipTransport::Udp => Peer::udp(addr),
        SipTransport::Tcp => Peer::tcp(addr),
        SipTransport::Tls => Peer::tls(addr),
    };
    let credentials = match (&spec.username, &spec.password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    Some(Trunk {
        id: id.to_owned(),
        name: spec.name.clone(),
        host: spec.host.clone(),
        port: spec.port,
        peer,
        credentials,
        caller_id: spec.caller_id.clone(),
        invite_timeout: Duration::from_millis(u64::from(spec.invite_timeout_ms)),
        outbound_proxy: spec.outbound_proxy.clone(),
        srtp: match spec.srtp {
            TrunkSrtp::Off => SrtpPolicy::Disabled,
            TrunkSrtp::Optional => SrtpPolicy::Optional,
            TrunkSrtp::Required => SrtpPolicy::Required,
        },
        srtp_without_tls: spec.srtp_allow_without_tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_proto::v1::leg_command::Action;
    use freya_proto::v1::{BridgeLegs, DialLeg};

    fn command(action: Action) -> freya_proto::v1::LegCommand {
        freya_proto::v1::LegCommand {
            call_id: "c".into(),
            action: Some(action),
        }
    }

    #[test]
    fn leg_commands_from_the_wire_are_read_or_refused_whole() {
        let whisper = command(Action::Bridge(BridgeLegs {
            legs: vec![0, 1],
            agent: "whisper".into(),
            whisper_to: Some(1),
        }));
        assert_eq!(
            leg_command(&whisper),
            Some(LegCommand::Bridge {
                legs: vec![LegId(0), LegId(1)],
                agent: AgentMode::Whisper(LegId(1)),
            })
        );
        let no_target = command(Action::Bridge(BridgeLegs {
            legs: vec![0, 1],
            agent: "whisper".into(),
            whisper_to: None,
        }));
        assert_eq!(leg_command(&no_target), None);
        let odd_mode = command(Action::Bridge(BridgeLegs {
            legs: vec![0, 1],
            agent: "shouting".into(),
            whisper_to: None,
        }));
        assert_eq!(leg_command(&odd_mode), None);
        let huge = command(Action::Dial(DialLeg {
            leg: 256,
            to: "+1".into(),
            ..DialLeg::default()
        }));
        assert_eq!(leg_command(&huge), None, "no leg number wraps round");
        let remote = command(Action::Dial(DialLeg {
            leg: 1,
            to: "+1".into(),
            edge: "edge-b".into(),
            whisper: Some("Caller wants a refund".into()),
        }));
        assert_eq!(
            leg_command(&remote),
            Some(LegCommand::Dial {
                leg: LegId(1),
                to: "+1".into(),
                edge: Some("edge-b".into()),
                whisper: Some("Caller wants a refund".into()),
            })
        );
    }

    #[test]
    fn a_grant_is_read_only_for_a_call_id_and_a_leg_that_fit() {
        let host = freya_proto::v1::HostLeg {
            leg: 2,
            to: "+15550100".into(),
            workspace_id: "ws".into(),
            home_edge: "edge-a".into(),
        };
        let call = "0192f000-0000-7000-8000-000000000001";
        let grant = dial_grant(call, &host).expect("grant");
        assert_eq!((grant.key.leg, grant.home.as_str()), (2, "edge-a"));
        assert_eq!(dial_grant("not-a-uuid", &host), None);
        let big = freya_proto::v1::HostLeg { leg: 300, ..host };
        assert_eq!(dial_grant(call, &big), None);
    }
}
