//! A call on the edge: whether to take it ([`admission`]), its RTP port ([`ports`]), its media
//! core ([`media`]) and the task that owns it ([`task`]).

pub mod admission;
pub mod media;
pub mod ports;
pub mod task;
