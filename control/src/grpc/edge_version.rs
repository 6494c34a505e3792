//! Which edge releases a control plane serves. During a rolling upgrade the control plane goes
//! first and edges follow, so for a while edges run an older release: an edge one major (or any
//! number of minors) behind keeps working — the event contract is read at every schema an edge
//! ever wrote (`CallEvent.schema`) — while an edge two or more majors behind is refused at
//! registration, with a message naming both releases, rather than half-working. An operator can
//! raise the floor further with `[edges] min_version`. A plain value check, no I/O.

use std::fmt;

/// A release number, `MAJOR.MINOR.PATCH` (a `-pre` or `+build` suffix is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Release {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
}

impl Release {
    /// Parses `MAJOR.MINOR.PATCH`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut next = || parts.next()?.parse::<u64>().ok();
        let release = Self {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(release)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How far behind the control plane an edge's major release may be.
const MAJORS_BEHIND_SERVED: u64 = 1;

/// The answer to an edge's announced release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EdgeVersionVerdict {
    /// Served.
    Served,
    /// Served, but the announced version is not a release number (an edge built from a
    /// checkout, or a foreign client): nothing can be said about it.
    Unknown,
    /// Refused, with the message the edge logs.
    Refused(String),
}

/// Decides whether a control plane of release `control` serves an edge announcing `edge`, with
/// an operator's `min_version` floor (already validated).
pub(crate) fn judge(
    control: Release,
    min_version: Option<Release>,
    edge: &str,
) -> EdgeVersionVerdict {
    let Some(announced) = Release::parse(edge) else {
        return EdgeVersionVerdict::Unknown;
    };
    if announced.major + MAJORS_BEHIND_SERVED < control.major {
        return EdgeVersionVerdict::Refused(format!(
            "edge release {announced} is {} majors behind the control plane's {control}; \
             upgrade the edge to {}.x or later (an edge at most one major behind is served)",
            control.major - announced.major,
            control.major - MAJORS_BEHIND_SERVED,
        ));
    }
    if let Some(floor) = min_version.filter(|floor| announced < *floor) {
        return EdgeVersionVerdict::Refused(format!(
            "edge release {announced} is older than edges.min_version {floor} of this control \
             plane; upgrade the edge to {floor} or later"
        ));
    }
    EdgeVersionVerdict::Served
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> Release {
        Release::parse(text).expect("a release")
    }

    #[test]
    fn an_edge_two_majors_behind_is_refused_naming_both_releases() {
        match judge(release("3.2.0"), None, "1.9.4") {
            EdgeVersionVerdict::Refused(message) => {
                assert!(message.contains("1.9.4"), "{message}");
                assert!(message.contains("3.2.0"), "{message}");
                assert!(message.contains("2 majors behind"), "{message}");
                assert!(message.contains("upgrade the edge to 2.x"), "{message}");
            }
            other => panic!("refused, not {other:?}"),
        }
        assert!(matches!(
            judge(release("5.0.0"), None, "0.1.0"),
            EdgeVersionVerdict::Refused(_)
        ));
    }

    #[test]
    fn an_edge_one_major_or_some_minors_behind_is_served() {
        let control = release("3.2.0");
        for edge in [
            "2.0.0",
            "2.9.9",
            "3.1.7",
            "3.2.0",
            "3.3.0",
            "4.0.0",
            "3.1.0-rc.1",
        ] {
            assert_eq!(
                judge(control, None, edge),
                EdgeVersionVerdict::Served,
                "{edge}"
            );
        }
        assert_eq!(
            judge(release("0.1.0"), None, "0.0.9"),
            EdgeVersionVerdict::Served
        );
    }

    #[test]
    fn the_operators_floor_refuses_older_edges_with_its_name() {
        let floor = Some(release("3.1.2"));
        match judge(release("3.2.0"), floor, "3.1.1") {
            EdgeVersionVerdict::Refused(message) => {
                assert!(message.contains("edges.min_version 3.1.2"), "{message}")
            }
            other => panic!("refused, not {other:?}"),
        }
        assert_eq!(
            judge(release("3.2.0"), floor, "3.1.2"),
            EdgeVersionVerdict::Served
        );
    }

    #[test]
    fn a_version_that_is_no_release_number_is_unknown_not_refused() {
        for edge in ["", "test", "3.2", "3.2.0.1", "v3.2.0", "3.x.0"] {
            assert_eq!(
                judge(release("3.2.0"), None, edge),
                EdgeVersionVerdict::Unknown,
                "{edge:?}"
            );
        }
    }
}
