//! Which edge places an outbound call from a number: only online edges with room, in the
//! number's home region first, then in its further regions in the order the number lists them,
//! and any region for a number without a home. The same preference picks the edge that dials a
//! call's added leg when the call's own edge is in the wrong region for it ([`leg_edge`]). Pure,
//! so the preference is tested without edges.

use crate::store::EdgeRecord;
use freya_shared::model::{EdgeStatus, PhoneNumberSpec, ProviderSpec};

/// The edges that may place a call from a number reachable in `regions` (home first; empty for
/// every region), in the order to try them: online with room, the home region's before the
/// further regions' (in the order the number lists them), most headroom first within a region.
pub(crate) fn edges_in_preference(edges: Vec<EdgeRecord>, regions: &[&str]) -> Vec<EdgeRecord> {
    let rank = |edge: &EdgeRecord| {
        if regions.is_empty() {
            Some(0)
        } else {
            regions.iter().position(|r| *r == edge.region)
        }
    };
    let mut usable: Vec<(usize, EdgeRecord)> = edges
        .into_iter()
        .filter(|e| e.status == EdgeStatus::Online && e.active_calls < e.capacity)
        .filter_map(|e| rank(&e).map(|rank| (rank, e)))
        .collect();
    usable.sort_by_key(|(rank, e)| {
        (
            *rank,
            std::cmp::Reverse(e.capacity.saturating_sub(e.active_calls)),
        )
    });
    usable.into_iter().map(|(_, e)| e).collect()
}

/// The regions a leg to `to` is dialled from when the call's own edge (of `call_region`)
/// should not: the regions of the workspace's number `to` when it is homed elsewhere; else,
/// when none of the workspace's providers serves the call's region, the regions of the first
/// (by priority) bound to some. Empty: the call's own edge dials it.
pub(crate) fn leg_regions<'a>(
    call_region: Option<&str>,
    to: &str,
    numbers: &'a [PhoneNumberSpec],
    providers: &'a [ProviderSpec],
) -> Vec<&'a str> {
    let here = |regions: &[&str]| call_region.is_some_and(|r| regions.contains(&r));
    if let Some(number) = numbers.iter().find(|n| n.number == to) {
        let regions = number.reachable_regions();
        if !regions.is_empty() && !here(&regions) {
            return regions;
        }
    }
    let serves_here = providers
        .iter()
        .any(|p| call_region.is_none_or(|r| p.serves(r)));
    if serves_here {
        return Vec::new();
    }
    let mut bound: Vec<&ProviderSpec> = providers.iter().collect();
    bound.sort_by_key(|p| p.priority());
    bound
        .first()
        .map(|p| p.regions().iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The edge that dials a leg needing `regions` ([`leg_regions`]): `None` (the call's edge,
/// `home`) when none is needed, the home is in one of them, or no edge there is online with
/// room; else the best of those edges.
pub(crate) fn leg_edge(edges: Vec<EdgeRecord>, home: &str, regions: &[&str]) -> Option<String> {
    if regions.is_empty() {
        return None;
    }
    let home_fits = edges
        .iter()
        .any(|e| e.id == home && regions.contains(&e.region.as_str()));
    if home_fits {
        return None;
    }
    edges_in_preference(edges, regions)
        .into_iter()
        .map(|e| e.id)
        .find(|id| id != home)
}

#[cfg(test)]
#[path = "edge_choice_tests.rs"]
mod leg_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// An edge record of `region` in `status` carrying `active_calls` of 10.
    pub(super) fn edge(
        id: &str,
        region: &str,
        status: EdgeStatus,
        active_calls: u32,
    ) -> EdgeRecord {
        EdgeRecord {
            id: id.into(),
            region: region.into(),
            sip_addr: String::new(),
            http_addr: String::new(),
            version: String::new(),
            status,
            active_calls,
            capacity: 10,
            cpu_permille: 0,
            last_seen_ms: 0,
        }
    }

    fn ids(edges: Vec<EdgeRecord>) -> Vec<String> {
        edges.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn home_edges_come_first_then_further_regions_in_their_order() {
        let edges = vec![
            edge("ap-1", "ap", EdgeStatus::Online, 0),
            edge("eu-1", "eu", EdgeStatus::Online, 0),
            edge("us-busy", "us", EdgeStatus::Online, 7),
            edge("us-idle", "us", EdgeStatus::Online, 1),
            edge("other", "sa", EdgeStatus::Online, 0),
        ];
        assert_eq!(
            ids(edges_in_preference(edges, &["us", "eu", "ap"])),
            ["us-idle", "us-busy", "eu-1", "ap-1"]
        );
    }

    #[test]
    fn edges_that_cannot_take_a_call_are_left_out() {
        let edges = vec![
            edge("us-off", "us", EdgeStatus::Offline, 0),
            edge("us-draining", "us", EdgeStatus::Draining, 0),
            edge("us-full", "us", EdgeStatus::Online, 10),
            edge("eu-1", "eu", EdgeStatus::Online, 3),
        ];
        assert_eq!(ids(edges_in_preference(edges, &["us", "eu"])), ["eu-1"]);
    }

    #[test]
    fn a_number_without_a_home_may_use_any_region() {
        let edges = vec![
            edge("eu-1", "eu", EdgeStatus::Online, 5),
            edge("us-1", "us", EdgeStatus::Online, 2),
        ];
        assert_eq!(ids(edges_in_preference(edges, &[])), ["us-1", "eu-1"]);
    }
}
