//! A call on the edge: whether to take it ([`admission`], with each source's INVITE rate in
//! [`invite_rate`] and the confirmed and unconfirmed call budgets in [`slots`]), its RTP port ([`ports`]), its codec
//! ([`codec`]), media leg ([`leg`]: RTP or a provider's media stream) and media core ([`media`], its key presses in [`digits`]) and the task that owns it ([`task`]). The voice pipeline lives here too: the
//! agent's ear ([`listener`]), the sans-IO conversation ([`conversation`]) with its prompt
//! variables ([`prompt`]), the provider shell ([`pipeline`], with live streaming STT in [`live_stt`]) and their wiring into the call
//! task ([`talk`]). A call answered by a workflow runs it in [`flow`] (with HTTP `function`
//! requests in [`flow_function`]); [`responder`] lets the task drive either the same way.

pub mod admission;
pub mod bye;
pub mod codec;
pub mod conversation;
pub mod core;
pub mod digits;
mod event_payloads;
pub mod flow;
pub mod flow_function;
pub mod invite_rate;
pub mod leg;
pub mod listener;
pub mod live_stt;
pub mod liveness;
pub mod media;
pub mod pipeline;
pub mod ports;
pub mod prompt;
pub mod provider_request;
pub mod providers;
pub mod responder;
pub mod slots;
pub mod talk;
pub mod task;
