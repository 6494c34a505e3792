//! Regression guards on memory per call: the sizes of what a call keeps for its whole life (its
//! task's future) and of what it queues (provider requests). Each bound is well above today's
//! size and well below the size that once cost every call kilobytes.

use std::future::Future;
use std::mem::size_of;

use super::provider_request::ProviderRequest;
use super::task::run;

/// The size of the future `f` returns, without calling it.
fn future_size<A, B, C, D, F: Future>(_: &impl FnOnce(A, B, C, D) -> F) -> usize {
    size_of::<F>()
}

/// The call task's future was 15,280 bytes: it kept the call's setup (1.5 KiB) twice and its
/// core inline beside the futures of its ending. Today about 2.6 KiB (the core is boxed).
#[test]
fn a_call_task_future_is_at_most_4_kib() {
    let size = future_size(&run);
    eprintln!("call task future: {size} bytes");
    assert!(size <= 4096, "{size}");
}

/// A live turn's 20 ms frame made every request 336 bytes, and a voice's queue of them 3–6 KiB.
#[test]
fn a_provider_request_is_at_most_128_bytes() {
    let size = size_of::<ProviderRequest>();
    eprintln!("provider request: {size} bytes");
    assert!(size <= 128, "{size}");
}
