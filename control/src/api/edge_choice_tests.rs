//! Which edge dials an added leg: the call's own unless the leg's number is homed, or its
//! trunks bound, elsewhere.

use super::*;
use freya_shared::model::{SipTransport, SipTrunkSpec};

/// An idle online edge of `region`.
fn edge(id: &str, region: &str) -> EdgeRecord {
    super::tests::edge(id, region, EdgeStatus::Online, 0)
}

fn trunk(priority: i32, regions: &[&str]) -> ProviderSpec {
    ProviderSpec::SipTrunk(SipTrunkSpec {
        name: format!("t{priority}"),
        host: "127.0.0.1".into(),
        port: 5060,
        transport: SipTransport::Udp,
        username: None,
        password: None,
        caller_id: None,
        priority,
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        invite_timeout_ms: 10_000,
        outbound_proxy: None,
        registration: None,
        srtp: Default::default(),
        srtp_allow_without_tls: false,
    })
}

fn number(number: &str, region: &str) -> PhoneNumberSpec {
    PhoneNumberSpec {
        number: number.into(),
        region: Some(region.into()),
        regions: Vec::new(),
        agent_id: Some("agent".into()),
        workflow_id: None,
    }
}

fn cluster() -> Vec<EdgeRecord> {
    vec![edge("us-1", "us"), edge("eu-1", "eu"), edge("eu-2", "eu")]
}

#[test]
fn a_leg_through_a_trunk_bound_to_another_region_is_dialled_there() {
    let providers = [trunk(1, &["eu"])];
    let regions = leg_regions(Some("us"), "+4733333333", &[], &providers);
    assert_eq!(regions, ["eu"]);
    let chosen = leg_edge(cluster(), "us-1", &regions);
    assert!(
        matches!(chosen.as_deref(), Some("eu-1" | "eu-2")),
        "{chosen:?}"
    );
}

#[test]
fn a_leg_the_call_s_region_can_dial_stays_on_the_call_s_edge() {
    let everywhere = [trunk(2, &["eu"]), trunk(3, &[])];
    assert!(leg_regions(Some("us"), "+4733333333", &[], &everywhere).is_empty());
    let here = [trunk(1, &["us", "eu"])];
    assert!(leg_regions(Some("us"), "+4733333333", &[], &here).is_empty());
    assert_eq!(leg_edge(cluster(), "us-1", &[]), None);
}

#[test]
fn a_number_homed_in_another_region_is_dialled_from_there() {
    let numbers = [number("+4722222222", "eu")];
    let providers = [trunk(1, &[])];
    let regions = leg_regions(Some("us"), "+4722222222", &numbers, &providers);
    assert_eq!(regions, ["eu"]);
    assert!(leg_edge(cluster(), "us-1", &regions).is_some_and(|e| e.starts_with("eu-")));
    // Homed in the call's own region: its edge dials.
    assert!(leg_regions(Some("eu"), "+4722222222", &numbers, &providers).is_empty());
}

#[test]
fn with_no_edge_with_room_there_the_call_s_edge_dials() {
    let mut edges = cluster();
    for e in edges.iter_mut().filter(|e| e.region == "eu") {
        e.active_calls = e.capacity;
    }
    assert_eq!(leg_edge(edges, "us-1", &["eu"]), None);
    // The call's edge is in the region already.
    assert_eq!(leg_edge(cluster(), "eu-2", &["eu"]), None);
}
