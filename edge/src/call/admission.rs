//! Whether the edge takes an inbound call, decided from its cached configuration and its load
//! alone — never by asking the control plane — and the SIP answer when it does not.

use freya_shared::snapshot::{EdgeConfigSnapshot, Route};

/// Why a call is refused, as the SIP response that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    /// Seconds for a `Retry-After` header (busy or draining).
    pub retry_after: Option<u32>,
}

/// Seconds a refused caller (or the carrier) should wait before trying this edge again.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The route for a call to `dialled`, or the refusal.
pub fn admit<'a>(
    snapshot: &'a EdgeConfigSnapshot,
    dialled: &str,
    draining: bool,
    active_calls: u32,
    capacity: u32,
) -> Result<Route<'a>, Refusal> {
    if draining || active_calls >= capacity {
        return Err(Refusal {
            code: 503,
            reason: "Service Unavailable",
            retry_after: Some(RETRY_AFTER_SECONDS),
        });
    }
    snapshot.route(dialled).ok_or(Refusal {
        code: 404,
        reason: "Not Found",
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_shared::snapshot::{AgentConfig, CallTarget, RoutedNumber};

    fn snapshot() -> EdgeConfigSnapshot {
        EdgeConfigSnapshot {
            version: 2,
            region: "local".into(),
            numbers: vec![RoutedNumber {
                number: "demo".into(),
                workspace_id: "w".into(),
                target: CallTarget::Agent {
                    agent_id: "a".into(),
                },
                home_region: None,
            }],
            agents: vec![AgentConfig {
                id: "a".into(),
                workspace_id: "w".into(),
                spec: serde_json::from_str(r#"{"name":"Demo"}"#).expect("agent"),
            }],
            providers: Vec::new(),
            workflows: Vec::new(),
        }
    }

    #[test]
    fn a_known_number_with_room_is_admitted() {
        let snap = snapshot();
        let route = admit(&snap, "demo", false, 3, 10).expect("admitted");
        match route.target {
            freya_shared::snapshot::RouteTarget::Agent(agent) => assert_eq!(agent.id, "a"),
            other => panic!("expected the agent, got {other:?}"),
        }
    }

    #[test]
    fn unknown_numbers_get_404_and_a_full_or_draining_edge_503_with_retry_after() {
        let snap = snapshot();
        assert_eq!(
            admit(&snap, "nobody", false, 0, 10)
                .map(|_| ())
                .unwrap_err()
                .code,
            404
        );
        let full = admit(&snap, "demo", false, 10, 10).map(|_| ()).unwrap_err();
        assert_eq!((full.code, full.retry_after), (503, Some(5)));
        assert_eq!(
            admit(&snap, "demo", true, 0, 10)
                .map(|_| ())
                .unwrap_err()
                .code,
            503
        );
    }
}
