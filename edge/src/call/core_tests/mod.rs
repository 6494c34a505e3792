//! Simulated-time tests of the call core.
