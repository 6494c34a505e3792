//! Audio media cores of the edge: the PCM frame that flows through a call, the G.711 and Opus
//! codecs that turn it into telephone payloads and back, the in-band DTMF detector that hears key
//! presses in the caller's audio, the resampler that moves it between the
//! telephone rate (8 kHz) and the rates speech engines want (16, 24, 48 kHz), and the recorder
//! that mixes both directions into a WAV file. Everything here is sans-IO and allocation-free per
//! frame (the recorder's file writes are batched): the call task owns these values and feeds them
//! frames.

/// Keypad tones: `freya-loadtest` presses keys in audio, benches measure the detector.
pub mod dtmf_tones;
/// PCM frames and sample rates: every crate that moves audio with the edge.
pub mod frame;
/// G.711: the load tester's caller and the media bench.
pub mod g711;
pub(crate) mod level_gate;
/// Opus: the load tester's caller, the RTP fuzz target and the media bench.
pub mod opus;
pub(crate) mod recording;
/// The resampler: the load tester's audio and the media bench.
pub mod resample;
pub(crate) mod turn;
pub(crate) mod vad;
