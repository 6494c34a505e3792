//! What members tell each other about themselves: region, load, draining, version and where
//! they take SIP, HTTP and mesh (QUIC) connections — the facts a peer needs to send a call elsewhere. Each edge
//! broadcasts its own [`PeerHealth`] (a foca custom broadcast) with a sequence number that only
//! grows within a generation; [`HealthBoard`] keeps the newest report per edge and tells foca
//! to pass on only news, so a report stops travelling once everyone has it. A report is at most
//! [`MAX_HEALTH_LEN`] bytes; anything larger or malformed is refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut};

use super::identity::{put_addr, take_addr, take_str, CodecError, MAX_ID_LEN};

/// Largest encoded health report: two ids and a version (64 bytes each with their lengths),
/// two IPv6 addresses, an optional third (the mesh's, behind a presence byte) and the numbers.
pub const MAX_HEALTH_LEN: usize = 3 * (1 + MAX_ID_LEN) + 2 * 19 + (1 + 19) + 8 + 8 + 4 * 4 + 1;

/// One edge's report about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    pub edge_id: Arc<str>,
    /// The reporting run's generation: a restarted edge's reports replace its old run's.
    pub generation: u64,
    /// Grows with every report of one generation.
    pub seq: u64,
    pub region: Arc<str>,
    pub active_calls: u32,
    pub capacity: u32,
    /// CPU use of the edge process, in per mille of one core.
    pub cpu_permille: u32,
    pub draining: bool,
    /// The edge's software version.
    pub version: Arc<str>,
    pub sip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where the edge's QUIC mesh listens (cross-edge legs); `None` when it runs no mesh.
    pub mesh_addr: Option<SocketAddr>,
}

impl PeerHealth {
    /// The report as bytes (at most [`MAX_HEALTH_LEN`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(MAX_HEALTH_LEN);
        for text in [&self.edge_id, &self.region, &self.version] {
            let bytes = &text.as_bytes()[..text.len().min(MAX_ID_LEN)];
            buf.put_u8(bytes.len() as u8);
            buf.put_slice(bytes);
        }
        buf.put_u64(self.generation);
        buf.put_u64(self.seq);
        buf.put_u32(self.active_calls);
        buf.put_u32(self.capacity);
        buf.put_u32(self.cpu_permille);
        buf.put_u8(u8::from(self.draining));
        put_addr(self.sip_addr, &mut buf);
        put_addr(self.http_addr, &mut buf);
        match self.mesh_addr {
            Some(addr) => {
                buf.put_u8(1);
                put_addr(addr, &mut buf);
            }
            None => buf.put_u8(0),
        }
        buf
    }

    /// Reads a report; the whole of `bytes` must be one report.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > MAX_HEALTH_LEN {
            return Err(CodecError::Short);
        }
        let buf = &mut bytes;
        let edge_id = take_str(buf)?;
        let region = take_str(buf)?;
        let version = take_str(buf)?;
        let short = |_| CodecError::Short;
        let health = Self {
            edge_id,
            region,
            version,
            generation: buf.try_get_u64().map_err(short)?,
            seq: buf.try_get_u64().map_err(short)?,
            active_calls: buf.try_get_u32().map_err(short)?,
            capacity: buf.try_get_u32().map_err(short)?,
            cpu_permille: buf.try_get_u32().map_err(short)?,
            draining: buf.try_get_u8().map_err(short)? != 0,
            sip_addr: take_addr(buf)?,
            http_addr: take_addr(buf)?,
            mesh_addr: match buf.try_get_u8().map_err(short)? {
                0 => None,
                1 => Some(take_addr(buf)?),
                _ => return Err(CodecError::Short),
            },
        };
        if buf.has_remaining() {
            return Err(CodecError::Short);
        }
        Ok(health)
    }

    fn stamp(&self) -> (u64, u64) {
        (self.generation, self.seq)
    }
}

/// Which report a broadcast is, for foca to drop the ones a newer report replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthKey {
    edge_id: Arc<str>,
    stamp: (u64, u64),
}

impl foca::Invalidates for HealthKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.edge_id == other.edge_id && self.stamp >= other.stamp
    }
}

/// Why a broadcast was refused.
#[derive(Debug, thiserror::Error)]
#[error("a health report did not decode: {0}")]
pub struct BadHealth(#[from] CodecError);

/// The newest report of every edge heard of, bounded by `max_edges`. A cheap handle: foca owns
/// one clone (as its broadcast handler, which it does not lend back), the core reads another.
#[derive(Debug, Clone)]
pub struct HealthBoard {
    inner: Arc<Mutex<Reports>>,
}

#[derive(Debug)]
struct Reports {
    by_edge: HashMap<Arc<str>, PeerHealth>,
    max_edges: usize,
}

impl HealthBoard {
    /// An empty board that keeps at most `max_edges` reports.
    pub fn new(max_edges: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Reports {
                by_edge: HashMap::new(),
                max_edges,
            })),
        }
    }

    fn reports(&self) -> std::sync::MutexGuard<'_, Reports> {
        // The lock guards plain data; a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest report of `edge_id`.
    pub fn get(&self, edge_id: &str) -> Option<PeerHealth> {
        self.reports().by_edge.get(edge_id).cloned()
    }
}

impl foca::BroadcastHandler<super::Peer> for HealthBoard {
    type Key = HealthKey;
    type Error = BadHealth;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&super::Peer>,
    ) -> Result<Option<HealthKey>, BadHealth> {
        let health = PeerHealth::decode(data)?;
        let mut reports = self.reports();
        let newer = match reports.by_edge.get(&health.edge_id) {
            Some(known) => health.stamp() > known.stamp(),
            None => reports.by_edge.len() < reports.max_edges,
        };
        if !newer {
            return Ok(None);
        }
        let key = HealthKey {
            edge_id: health.edge_id.clone(),
            stamp: health.stamp(),
        };
        reports.by_edge.insert(health.edge_id.clone(), health);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    fn report(seq: u64) -> PeerHealth {
        PeerHealth {
            edge_id: Arc::from("edge-a"),
            generation: 1,
            seq,
            region: Arc::from("eu-west"),
            active_calls: 3,
            capacity: 100,
            cpu_permille: 250,
            draining: false,
            version: Arc::from("0.1.0"),
            sip_addr: "[2001:db8::1]:5060".parse().expect("addr"),
            http_addr: "127.0.0.1:8080".parse().expect("addr"),
            mesh_addr: Some("[2001:db8::1]:7443".parse().expect("addr")),
        }
    }

    #[test]
    fn a_report_round_trips_within_its_bound() {
        let bytes = report(1).encode();
        assert!(bytes.len() <= MAX_HEALTH_LEN);
        assert_eq!(PeerHealth::decode(&bytes).expect("decode"), report(1));
        for cut in 0..bytes.len() {
            assert!(PeerHealth::decode(&bytes[..cut]).is_err());
        }
        let without_mesh = PeerHealth {
            mesh_addr: None,
            ..report(1)
        };
        let bytes = without_mesh.encode();
        assert_eq!(PeerHealth::decode(&bytes).expect("decode"), without_mesh);
        let mut bad_flag = bytes.clone();
        *bad_flag.last_mut().expect("flag") = 7;
        assert!(PeerHealth::decode(&bad_flag).is_err());
    }

    #[test]
    fn only_newer_reports_are_passed_on() {
        let mut board = HealthBoard::new(10);
        assert!(board
            .receive_item(&report(2).encode(), None)
            .expect("ok")
            .is_some());
        assert!(board
            .receive_item(&report(2).encode(), None)
            .expect("ok")
            .is_none());
        assert!(board
            .receive_item(&report(1).encode(), None)
            .expect("ok")
            .is_none());
        assert!(board
            .receive_item(&report(3).encode(), None)
            .expect("ok")
            .is_some());
        assert_eq!(board.get("edge-a").map(|h| h.seq), Some(3));
    }

    #[test]
    fn the_board_is_bounded() {
        let mut board = HealthBoard::new(1);
        assert!(board
            .receive_item(&report(1).encode(), None)
            .expect("ok")
            .is_some());
        let other = PeerHealth {
            edge_id: Arc::from("edge-b"),
            ..report(1)
        };
        assert!(board
            .receive_item(&other.encode(), None)
            .expect("ok")
            .is_none());
    }
}
