//! Audio media cores of the edge: the PCM frame that flows through a call, the G.711 and Opus
//! codecs that turn it into telephone payloads and back, the in-band DTMF detector that hears key
//! presses in the caller's audio, the resampler that moves it between the
//! telephone rate (8 kHz) and the rates speech engines want (16, 24, 48 kHz), and the recorder
//! that mixes both directions into a WAV file. Everything here is sans-IO and allocation-free per
//! frame (the recorder's file writes are batched): the call task owns these values and feeds them
//! frames.

pub mod dtmf_tones;
pub mod frame;
pub mod g711;
pub mod level_gate;
pub mod opus;
pub mod recording;
pub mod resample;
pub mod turn;
pub mod vad;
