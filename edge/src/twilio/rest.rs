//! Twilio's REST API, the two calls the edge needs, both with basic auth (account SID and auth
//! token) and a form: create a call (`POST {api_base_url}/2010-04-01/Accounts/{AccountSid}/Calls.json`
//! with `To`, `From` and `Twiml`) — the TwiML connects the answered call to this edge's media
//! stream, so the call then runs like an inbound one, and the status callback tells the edge of
//! a call that was never answered; and update a live call (`…/Calls/{CallSid}.json` with
//! `Twiml`), which is how a call on a media stream is transferred: Twilio leaves the stream and
//! runs the new TwiML.

use freya_shared::model::call_payloads::AttemptOutcome;
use std::time::Duration;

use freya_shared::model::TwilioAccountSpec;

/// How long Twilio may take to accept a call request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why Twilio did not take a call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TwilioRestError {
    #[error("cannot reach Twilio: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("Twilio answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("Twilio's answer has no call `sid`")]
    NoSid,
    #[error("the account has no auth token")]
    NoToken,
}

impl TwilioRestError {
    /// The word call records use for it.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            TwilioRestError::Unreachable(_) => "provider_unreachable",
            TwilioRestError::Refused { .. } => "provider_refused",
            TwilioRestError::NoSid => "provider_bad_answer",
            TwilioRestError::NoToken => "provider_misconfigured",
        }
    }

    /// How the try ended, in a call record's attempt list.
    pub(crate) fn outcome(&self) -> AttemptOutcome {
        match self {
            TwilioRestError::Unreachable(e) if e.is_timeout() => AttemptOutcome::Timeout,
            TwilioRestError::Unreachable(_) => AttemptOutcome::TransportError,
            TwilioRestError::Refused { status, message } => AttemptOutcome::Response {
                status: *status,
                reason: message.clone(),
            },
            other => AttemptOutcome::Other(other.to_string()),
        }
    }
}

/// Replaces what live call `call_sid` runs with `twiml` (a `<Dial>` to transfer it); Twilio
/// then ends the call's media stream.
pub(crate) async fn update_call(
    http: &reqwest::Client,
    account: &TwilioAccountSpec,
    call_sid: &str,
    twiml: &str,
) -> Result<(), TwilioRestError> {
    post_form(
        http,
        account,
        &format!("Calls/{call_sid}.json"),
        &[("Twiml", twiml)],
    )
    .await?;
    Ok(())
}

/// POSTs `fields` as a form to the account's `path` (below `Accounts/{sid}/`) with its
/// credentials; returns the body of a 2xx answer, or Twilio's refusal.
async fn post_form(
    http: &reqwest::Client,
    account: &TwilioAccountSpec,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<String, TwilioRestError> {
    let token = account
        .auth_token
        .as_deref()
        .ok_or(TwilioRestError::NoToken)?;
    let url = format!(
        "{}/2010-04-01/Accounts/{}/{path}",
        account.api_base_url.trim_end_matches('/'),
        account.account_sid
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let response = http
        .post(&url)
        .basic_auth(&account.account_sid, Some(token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(refused(status.as_u16(), text))
    }
}

/// Twilio's error answer: its JSON `message`, or the text when it is not JSON.
fn refused(status: u16, text: String) -> TwilioRestError {
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    TwilioRestError::Refused { status, message }
}

/// Asks Twilio to call `to` from `from` and run `twiml` once answered, and to POST the call's
/// final status to `status_callback`; returns the call SID.
pub(crate) async fn create_call(
    http: &reqwest::Client,
    account: &TwilioAccountSpec,
    to: &str,
    from: &str,
    twiml: &str,
    status_callback: &str,
) -> Result<String, TwilioRestError> {
    let fields = [
        ("To", to),
        ("From", from),
        ("Twiml", twiml),
        ("StatusCallback", status_callback),
    ];
    let text = post_form(http, account, "Calls.json", &fields).await?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["sid"].as_str().map(str::to_owned))
        .ok_or(TwilioRestError::NoSid)
}
