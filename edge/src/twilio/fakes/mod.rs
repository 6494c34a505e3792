//! A fake Twilio for tests. [`FakeTwilio`] is the REST API's `Calls.json`: it checks basic auth
//! against the account it was made with, records every call request, answers with a call SID
//! (or with an error when told to fail), and — like Twilio once the callee answers — runs the
//! request's `<Connect><Stream>` TwiML with a [`StreamCaller`], keeping its report; or leaves
//! the call unanswered and POSTs its final status to the request's `StatusCallback`. It also
//! takes updates of live calls (`Calls/{CallSid}.json` with new `Twiml`, how a call is
//! transferred), recording each, or refusing them when told to. It serves the account itself
//! (`GET Accounts/{AccountSid}.json`, what a provider test fetches). For inbound
//! calls a test drives the edge directly with [`post_voice_webhook`] and a [`StreamCaller`].

mod caller;

pub use caller::{
    post_voice_webhook, post_voice_webhook_with, CallerAction, StreamCaller, StreamReport,
    WebhookAnswer,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;

use super::twiml::find_connect_stream;

/// One `Calls.json` request the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedCall {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub twiml: String,
}

/// One live-call update (`Calls/{CallSid}.json`) the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUpdate {
    pub call_sid: String,
    pub twiml: String,
}

#[derive(Default)]
struct Books {
    updates: Vec<CallUpdate>,
    update_fail_status: Option<u16>,
    requests: Vec<RequestedCall>,
    unauthorized: usize,
    failed: usize,
    fail_status: Option<u16>,
    answer_with: Option<Vec<CallerAction>>,
    /// The final status of calls that are not answered (`busy`, `no-answer`, ...).
    unanswered: Option<String>,
    reports: Vec<anyhow::Result<StreamReport>>,
}

type Shared = Arc<(String, String, Mutex<Books>)>;

fn books(shared: &Shared) -> MutexGuard<'_, Books> {
    shared.2.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake Twilio REST API for one account.
pub struct FakeTwilio {
    addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTwilio {
    /// Starts the fake on 127.0.0.1 for account `account_sid` with `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new((
            account_sid.to_owned(),
            auth_token.to_owned(),
            Mutex::new(Books::default()),
        ));
        let router = Router::new()
            .route("/2010-04-01/Accounts/{account}", get(fetch_account))
            .route(
                "/2010-04-01/Accounts/{account}/Calls.json",
                post(create_call),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update_call),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The base URL to give the account as `api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers every call request with this HTTP status (Twilio's error shape) from now on.
    pub fn fail_with(&self, status: u16) {
        books(&self.shared).fail_status = Some(status);
    }

    /// Answers every live-call update with this HTTP status (Twilio's error shape) from now on.
    pub fn fail_updates_with(&self, status: u16) {
        books(&self.shared).update_fail_status = Some(status);
    }

    /// The live-call updates accepted so far.
    pub fn updates(&self) -> Vec<CallUpdate> {
        books(&self.shared).updates.clone()
    }

    /// Answers each requested call by running its stream with these caller actions.
    pub fn answer_with(&self, actions: Vec<CallerAction>) {
        books(&self.shared).answer_with = Some(actions);
    }

    /// Leaves each requested call unanswered with this final status (`busy`, `no-answer`,
    /// `failed`), POSTed signed to the request's `StatusCallback`.
    pub fn leave_unanswered(&self, status: &str) {
        books(&self.shared).unanswered = Some(status.to_owned());
    }

    /// The call requests accepted so far.
    pub fn requests(&self) -> Vec<RequestedCall> {
        books(&self.shared).requests.clone()
    }

    /// Requests refused for bad credentials.
    pub fn unauthorized(&self) -> usize {
        books(&self.shared).unauthorized
    }

    /// Requests answered with an error because of [`fail_with`](Self::fail_with).
    pub fn failed(&self) -> usize {
        books(&self.shared).failed
    }

    /// Takes the reports of the streams run for answered calls so far.
    pub fn take_reports(&self) -> Vec<anyhow::Result<StreamReport>> {
        std::mem::take(&mut books(&self.shared).reports)
    }
}

fn twilio_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"code": 20000 + status.as_u16(), "message": message, "status": status.as_u16()})),
    )
        .into_response()
}

/// Whether a request carries the account's basic auth and names the account.
fn authorized(shared: &Shared, account: &str, headers: &HeaderMap) -> bool {
    let (sid, token, _) = &**shared;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"))
    );
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized || account != sid {
        books(shared).unauthorized += 1;
        return false;
    }
    true
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: the account, in Twilio's shape.
async fn fetch_account(
    State(shared): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = account.strip_suffix(".json") else {
        return twilio_error(StatusCode::NOT_FOUND, "no such resource");
    };
    if !authorized(&shared, account, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, "Authenticate");
    }
    (
        StatusCode::OK,
        Json(serde_json::json!({
            "sid": account,
            "friendly_name": "Fake account",
            "status": "active",
            "type": "Full",
            "uri": format!("/2010-04-01/Accounts/{account}.json"),
        })),
    )
        .into_response()
}

async fn update_call(
    State(shared): State<Shared>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &account, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, "Authenticate");
    }
    let Some(call_sid) = call.strip_suffix(".json") else {
        return twilio_error(StatusCode::NOT_FOUND, "no such resource");
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let Some(twiml) = form.get("Twiml").filter(|t| !t.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, "Twiml is required");
    };
    let mut books = books(&shared);
    if let Some(status) = books.update_fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return twilio_error(status, "the fake was told to fail");
    }
    books.updates.push(CallUpdate {
        call_sid: call_sid.to_owned(),
        twiml: twiml.clone(),
    });
    (
        StatusCode::OK,
        Json(serde_json::json!({"sid": call_sid, "account_sid": account, "status": "in-progress"})),
    )
        .into_response()
}

async fn create_call(
    State(shared): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &account, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, "Authenticate");
    }
    let (sid, token, _) = &*shared;
    let fail_status = {
        let mut books = books(&shared);
        books.failed += usize::from(books.fail_status.is_some());
        books.fail_status
    };
    if let Some(status) = fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return twilio_error(status, "the fake was told to fail");
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let (to, from, twiml) = (field("To"), field("From"), field("Twiml"));
    if to.is_empty() || from.is_empty() || twiml.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, "To, From and Twiml are required");
    }
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let request = RequestedCall {
        sid: call_sid.clone(),
        to: to.clone(),
        from: from.clone(),
        twiml: twiml.clone(),
    };
    let (answer, unanswered) = {
        let mut books = books(&shared);
        books.requests.push(request);
        (books.answer_with.clone(), books.unanswered.clone())
    };
    if let (Some(status), Some(callback)) = (unanswered, form.get("StatusCallback").cloned()) {
        let (account, token, sid_sent) = (sid.clone(), token.clone(), call_sid.clone());
        tokio::spawn(async move {
            let form = [
                ("AccountSid", account.as_str()),
                ("CallSid", sid_sent.as_str()),
                ("CallStatus", status.as_str()),
                ("To", to.as_str()),
                ("From", from.as_str()),
            ];
            if let Err(e) = post_voice_webhook(&callback, &token, &form).await {
                tracing::warn!(error = %e, "the fake Twilio could not POST a status callback");
            }
        });
        return (
            StatusCode::CREATED,
            Json(serde_json::json!({"sid": call_sid, "status": "queued"})),
        )
            .into_response();
    }
    if let (Some(actions), Some(stream)) = (answer, find_connect_stream(&twiml)) {
        let caller = StreamCaller::new(stream, sid, &call_sid).signed_with(token);
        let shared = shared.clone();
        tokio::spawn(async move {
            let report = caller.run(&actions).await;
            books(&shared).reports.push(report);
        });
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"sid": call_sid, "account_sid": sid, "to": to, "from": from, "status": "queued"})),
    )
        .into_response()
}
