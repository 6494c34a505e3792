//! `freya-loadtest`: real SIP calls with real audio against an edge, measured and reported.
//!
//! The pieces, bottom up: [`audio`] loads what the caller says; [`uac`] places one call with the
//! edge's own sans-IO SIP and RTP cores; [`onset`] and [`stream`] measure what comes back;
//! [`scenario`] says how many calls, how fast; [`runner`] drives them and gathers a
//! [`summary::Summary`]; [`report`] writes it as JSON and HTML; [`procstat`] samples the edge's
//! CPU and memory, [`edge_metrics`] reads its own inter-departure histogram; [`sipp`] runs the same pattern with sipp for comparison; [`failover`] spreads calls over
//! several edges and kills one mid-run; [`follow`] sends new calls only to edges the cluster
//! says take them.

pub mod audio;
pub mod caller;
pub mod cli;
pub mod dtmf_spec;
pub mod edge_metrics;
pub mod failover;
pub mod follow;
pub mod gate;
pub mod onset;
pub mod procstat;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sipp;
pub mod stream;
pub mod summary;
pub mod uac;
