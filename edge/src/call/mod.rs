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

pub(crate) mod admission;
pub(crate) mod bye;
/// A call's codec: the media bench and `freya-control`'s DTMF test encode with it.
pub mod codec;
/// Not used outside the edge: `pub` until its test-only methods move into its tests.
pub mod conversation;
/// The call core: the media bench drives a whole call in simulated time.
pub mod core;
pub(crate) mod digits;
mod event_payloads;
pub(crate) mod flow;
pub(crate) mod flow_function;
pub(crate) mod hosted;
pub(crate) mod info_digits;
/// Not used outside the edge: `pub` until its test-only methods move into its tests.
pub mod invite_rate;
pub(crate) mod leg;
pub(crate) mod listener;
/// Not used outside the edge: `pub` until its test-only methods move into its tests.
pub mod live_stt;
pub(crate) mod liveness;
/// One call's media core: the media bench.
pub mod media;
pub(crate) mod mix;
pub(crate) mod pipeline;
/// Not used outside the edge: `pub` until its test-only methods move into its tests.
pub mod ports;
pub(crate) mod prompt;
pub(crate) mod provider_request;
pub(crate) mod providers;
pub(crate) mod responder;
#[cfg(test)]
mod sizes_tests;
/// Not used outside the edge: `pub` until its test-only methods move into its tests.
pub mod slots;
pub(crate) mod srtp_leg;
pub(crate) mod talk;
/// `CallDirection`: the media bench starts a `CallCore` with it.
pub mod task;
mod task_mesh;
