//! A call on the edge: whether to take it ([`admission`], with each source's INVITE rate in
//! [`invite_rate`] and the confirmed and unconfirmed call budgets in [`slots`]), its RTP port
//! ([`ports`]), its codec ([`codec`]), media leg ([`leg`]: RTP or a provider's media stream) and
//! media core ([`media`], its key presses in [`digits`], ours by SIP INFO paced in
//! [`info_digits`]). The call itself is a sans-IO core
//! ([`core`]: `CallCore`, every decision the call makes) inside a task that only moves bytes,
//! time and results ([`task`]). The voice lives here too: the agent's ear ([`listener`]), the
//! sans-IO conversation ([`conversation`]) with its prompt variables ([`prompt`]) wired to the
//! media in [`talk`]; a call answered by a workflow runs it in [`flow`]; [`responder`] lets the
//! core drive either the same way. They ask for provider work as values
//! ([`provider_request`]), which the task's async provider side carries out ([`providers`], with
//! one [`pipeline`] per voice, live streaming STT in [`live_stt`] and workflow HTTP `function`
//! requests in [`flow_function`]).

pub mod admission;
pub mod bye;
pub mod codec;
pub mod conversation;
pub mod core;
pub mod digits;
mod event_payloads;
pub mod flow;
pub mod flow_function;
pub mod info_digits;
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
