//! The edge's Twilio endpoints. `POST /twilio/voice` is the voice webhook a Twilio number calls
//! when someone dials it: the form is first checked against `X-Twilio-Signature` (under the auth
//! token of a Twilio account with the form's `AccountSid`, over this edge's public URL) — so an
//! unsigned request learns nothing about which numbers exist — then the account must belong to
//! the dialled number's workspace, the number is routed from the cached configuration like a SIP call's, and the answer is TwiML
//! connecting the call to a bidirectional media stream, carrying a signed [`StreamTicket`]: on
//! this edge when it is ready, not draining, has room and is in the number's home region; else
//! on the best live peer the cluster's gossip shows (`cluster::routing::place`, the choice a
//! 302 makes), never on a peer that is down, suspect, draining or full; else the call is
//! rejected `busy`. `GET /twilio/media` is that stream's WebSocket (see [`super::stream`]).
//! `POST /twilio/status` takes the final status of an outbound call (signed the same way, its
//! ticket in the query): a call never answered — busy, no answer, failed, canceled — is recorded
//! as failed with that reason; an answered one was recorded by its stream. A body over
//! [`WEBHOOK_BODY_LIMIT`] is refused with a 413 from its `Content-Length`, unread.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::ticket::StreamTicket;
use super::{signature, twiml, TwilioEdge};
use crate::cluster::routing::{place, Placement, RedirectCause};
use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEventData, FailReason, ProviderSpec};

/// Largest body the Twilio endpoints take. Twilio posts a form of a few dozen short fields
/// (about 1 KiB); a larger `Content-Length` is refused from the headers, with a 413.
pub(crate) const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// The routes, under the edge's HTTP listener.
pub(crate) fn router(twilio: TwilioEdge) -> Router {
    let router = Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/media", get(media))
        .route("/twilio/status", post(status))
        .with_state(twilio);
    crate::http::body_limit(router, WEBHOOK_BODY_LIMIT)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// What a Twilio signature is checked over, and the signature itself: the URL Twilio called
/// (our public URL with this request's path and query) and the `X-Twilio-Signature` header,
/// empty when absent (which then fails).
fn signed_request<'a>(twilio: &TwilioEdge, uri: &Uri, headers: &'a HeaderMap) -> (String, &'a str) {
    let url = format!(
        "{}{}",
        twilio.public_url,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (url, given)
}

async fn voice(
    State(twilio): State<TwilioEdge>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let mut fields = [""; 4];
    for (slot, name) in fields
        .iter_mut()
        .zip(["To", "From", "CallSid", "AccountSid"])
    {
        match field(name) {
            Some(value) => *slot = value,
            None => {
                twilio.count("bad_form");
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("missing form field `{name}`"),
                );
            }
        }
    }
    let [to, from, call_sid, account_sid] = fields;
    let snapshot = twilio.services.state.snapshot();
    let (url, given) = signed_request(&twilio, &uri, &headers);
    // The signature is checked before anything is looked up by `To`, under the token of every
    // account with this `AccountSid`: until a request proves it comes from Twilio, every number
    // gets the same answer, so nobody can learn which numbers exist here.
    let signers: Vec<_> = snapshot
        .providers
        .iter()
        .filter_map(|p| match &p.spec {
            ProviderSpec::Twilio(a) if a.account_sid == account_sid => Some((p, a)),
            _ => None,
        })
        .filter(|(_, a)| {
            let token = a.auth_token.as_deref().unwrap_or_default();
            !token.is_empty() && signature::verify(token, &url, &form, given)
        })
        .collect();
    if signers.is_empty() {
        tracing::warn!(%url, %call_sid, "Twilio webhook with a bad X-Twilio-Signature");
        twilio.count("bad_signature");
        return text(StatusCode::FORBIDDEN, "bad `X-Twilio-Signature`");
    }
    let Some(route) = snapshot.route(to) else {
        tracing::info!(%to, %call_sid, "Twilio call to a number this edge does not route");
        twilio.count("no_route");
        return text(StatusCode::NOT_FOUND, format!("no route for `To` {to}"));
    };
    let workspace_id = route.number.workspace_id.clone();
    let Some((provider, _)) = signers
        .into_iter()
        .find(|(p, _)| p.workspace_id == workspace_id)
    else {
        tracing::warn!(%to, %account_sid, "Twilio webhook from an account the number's workspace does not have");
        twilio.count("unknown_account");
        return text(
            StatusCode::FORBIDDEN,
            "`AccountSid` is not a Twilio account of this number's workspace",
        );
    };
    let state = &twilio.services.state;
    let not_here = if state.is_draining() || !state.is_ready() {
        Some(RedirectCause::Draining)
    } else if state.active_calls() >= state.capacity() {
        Some(RedirectCause::Capacity)
    } else if !route.number.is_home_in(&twilio.region) {
        Some(RedirectCause::OutOfRegion)
    } else {
        None
    };
    let view = twilio.cluster.as_ref().map(|c| c.borrow().clone());
    let members = view.as_ref().map_or(&[][..], |v| &v.members[..]);
    let me = &*twilio.services.edge_id;
    let home = route.number.home_region.as_deref();
    let placement = place(me, &twilio.region, home, not_here, members);
    let mut ticket = StreamTicket {
        call_id: freya_shared::ids::new_id(),
        workspace_id,
        outbound: false,
        from: from.to_owned(),
        to: to.to_owned(),
        agent_id: None,
        call_sid: Some(call_sid.to_owned()),
        provider_id: provider.id.clone(),
        edge_id: twilio.services.edge_id.to_string(),
        expires_at_ms: freya_shared::ids::now_ms() + super::ticket::INBOUND_TICKET_TTL_MS,
    };
    match placement {
        Placement::Here => {
            tracing::info!(call = %ticket.call_id, %call_sid, %to, "Twilio call connected to a media stream");
            twilio.count("connected");
            xml(twilio.connect_twiml(&ticket))
        }
        Placement::Peer(peer) => {
            ticket.edge_id = peer.edge_id.to_string();
            tracing::info!(call = %ticket.call_id, %call_sid, %to, peer = %peer.edge_id,
                cause = not_here.map_or("", RedirectCause::label),
                "Twilio call connected to a peer's media stream");
            twilio.count("peer");
            xml(twilio.connect_peer_twiml(peer, &ticket))
        }
        Placement::Nowhere => {
            tracing::info!(%call_sid, "Twilio call refused: draining or full, and no live peer can take it");
            twilio.count("busy");
            xml(twiml::reject("busy"))
        }
    }
}

async fn status(
    State(twilio): State<TwilioEdge>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ticket) = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
    }) else {
        return text(StatusCode::BAD_REQUEST, "missing query parameter `ticket`");
    };
    let ticket = match twilio.tickets.open(&ticket) {
        Ok(ticket) if ticket.outbound => ticket,
        _ => {
            twilio.count("bad_ticket");
            return text(StatusCode::FORBIDDEN, "bad `ticket`");
        }
    };
    let snapshot = twilio.services.state.snapshot();
    let token = snapshot.providers.iter().find_map(|p| match &p.spec {
        freya_shared::model::ProviderSpec::Twilio(a)
            if p.id == ticket.provider_id && p.workspace_id == ticket.workspace_id =>
        {
            a.auth_token.clone()
        }
        _ => None,
    });
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let (url, given) = signed_request(&twilio, &uri, &headers);
    if !token.is_some_and(|token| signature::verify(&token, &url, &form, given)) {
        tracing::warn!(call = %ticket.call_id, "Twilio status callback with a bad X-Twilio-Signature");
        twilio.count("bad_signature");
        return text(StatusCode::FORBIDDEN, "bad `X-Twilio-Signature`");
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let reason = match field("CallStatus") {
        "busy" => FailReason::Busy,
        "no-answer" => FailReason::NoAnswer,
        "failed" => FailReason::ProviderFailed,
        "canceled" => FailReason::Canceled,
        other => {
            tracing::debug!(call = %ticket.call_id, status = %other, "Twilio call status");
            return StatusCode::NO_CONTENT.into_response();
        }
    };
    tracing::info!(call = %ticket.call_id, %reason, "outbound Twilio call not answered");
    twilio.count("unanswered");
    let failed = CallFailed {
        direction: Some("outbound".to_owned()),
        to: Some(ticket.to),
        provider: Some("twilio".to_owned()),
        provider_call_id: Some(field("CallSid").to_owned()),
        ..CallFailed::because(reason)
    };
    let event = freya_shared::model::CallEvent::new(
        ticket.call_id,
        ticket.workspace_id,
        CallEventData::Failed(failed),
    );
    // Events wait rather than drop: they are the call's record.
    let _ = twilio.services.events.send(event).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn media(State(twilio): State<TwilioEdge>, mut request: Request) -> Response {
    let headers = request.headers();
    let wants_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs `Sec-WebSocket-Key`",
        );
    };
    if !wants_websocket || !version_ok {
        return text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (`Upgrade: websocket`, version 13)",
        );
    }
    // Checked once the stream's `start` names its call, and so the account that signed it.
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgrade = hyper::upgrade::on(&mut request);
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(
        async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let io = hyper_util::rt::TokioIo::new(upgraded);
                    let config = super::stream::socket_config();
                    let socket =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    super::stream::run(twilio, socket, signature).await;
                }
                Err(e) => tracing::debug!(error = %e, "media stream upgrade failed"),
            }
        }
        .instrument(tracing::debug_span!("twilio_stream")),
    );
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "cannot upgrade"))
}
