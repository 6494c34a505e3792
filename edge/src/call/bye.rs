//! Our BYE at the end of a call the edge hangs up, and its outcome for the call record: the
//! call's task asks the SIP task for the BYE and waits for its final response (or timer F),
//! so that `call.ended` says `bye_outcome` — `"200"`, `"404"`, `"481"`, `"timeout"` — rather
//! than claim a call ended whose far end never heard our BYE.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::task::DialogRequest;
use crate::sip::endpoint::ByeOutcome;

/// How long a call's end waits for its BYE's outcome: longer than timer F (64 x T1 = 32 s).
pub(crate) const BYE_OUTCOME_WAIT: Duration = Duration::from_secs(40);

/// Asks the SIP task to send the BYE of `dialog` and returns its outcome as recorded, or
/// `None` when no BYE went out (the dialog was already gone) or none came back in time.
pub(crate) async fn send_bye(
    requests: &mpsc::Sender<DialogRequest>,
    dialog: &str,
) -> Option<String> {
    let (bye, outcome) = oneshot::channel();
    let hangup = DialogRequest::Hangup {
        dialog: dialog.to_owned(),
        bye: Some(bye),
    };
    requests.send(hangup).await.ok()?;
    let outcome = tokio::time::timeout(BYE_OUTCOME_WAIT, outcome).await;
    outcome.ok()?.ok().map(ByeOutcome::as_record)
}
