//! The mesh's connection bookkeeping in simulated time.

use super::*;

fn addr() -> SocketAddr {
    "127.0.0.2:7400".parse().expect("addr")
}

#[test]
fn a_connection_is_asked_for_once_on_demand() {
    let now = Instant::now();
    let mut peers = MeshPeers::new(PeerSettings::default());
    assert!(!peers.want(now, addr()));
    assert!(!peers.want(now, addr()));
    assert_eq!(peers.poll_action(), Some(PeerAction::Connect(addr())));
    assert_eq!(peers.poll_action(), None);
    peers.handle_connected(now, addr());
    assert!(peers.want(now, addr()));
}

#[test]
fn failures_back_off_doubling_up_to_the_cap() {
    let settings = PeerSettings {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(350),
        ..PeerSettings::default()
    };
    let start = Instant::now();
    let mut peers = MeshPeers::new(settings);
    peers.add_leg(start, addr()).expect("leg");
    let mut now = start;
    let mut waits = Vec::new();
    for _ in 0..4 {
        assert!(!peers.want(now, addr()));
        assert_eq!(peers.poll_action(), Some(PeerAction::Connect(addr())));
        peers.handle_failed(now, addr());
        let at = peers.retry_at(addr()).expect("backing off");
        waits.push(at - now);
        // Wanting it again before the wait is over asks for nothing.
        assert!(!peers.want(now, addr()));
        assert_eq!(peers.poll_action(), None);
        assert_eq!(peers.poll_timeout(), Some(at));
        now = at;
        peers.handle_timeout(now);
        assert_eq!(peers.poll_action(), Some(PeerAction::Connect(addr())));
        peers.handle_failed(now, addr());
        waits.push(peers.retry_at(addr()).expect("again") - now);
        now = peers.retry_at(addr()).expect("again");
    }
    let ms: Vec<u128> = waits.iter().map(|d| d.as_millis()).collect();
    assert_eq!(&ms[..4], &[100, 200, 350, 350]);
    peers.handle_connected(now, addr());
    assert_eq!(peers.retry_at(addr()), None);
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_kept() {
    let settings = PeerSettings {
        idle_close: Duration::from_secs(5),
        ..PeerSettings::default()
    };
    let start = Instant::now();
    let mut peers = MeshPeers::new(settings);
    let busy: SocketAddr = "127.0.0.3:7400".parse().expect("addr");
    peers.handle_connected(start, addr());
    peers.handle_connected(start, busy);
    peers.add_leg(start, busy).expect("leg");
    assert_eq!(peers.poll_timeout(), Some(start + Duration::from_secs(5)));
    peers.handle_timeout(start + Duration::from_secs(4));
    assert_eq!(peers.poll_action(), None);
    peers.handle_timeout(start + Duration::from_secs(5));
    assert_eq!(peers.poll_action(), Some(PeerAction::Close(addr())));
    assert_eq!(peers.poll_action(), None);
    assert!(peers.want(start + Duration::from_secs(6), busy));
}

#[test]
fn a_peer_carries_at_most_max_legs() {
    let now = Instant::now();
    let mut peers = MeshPeers::new(PeerSettings {
        max_legs: 2,
        ..PeerSettings::default()
    });
    peers.add_leg(now, addr()).expect("first");
    peers.add_leg(now, addr()).expect("second");
    assert_eq!(peers.add_leg(now, addr()), Err(PeerLimit::TooManyLegs(2)));
    peers.remove_leg(now, addr());
    peers.add_leg(now, addr()).expect("room again");
    assert_eq!(peers.legs(addr()), 2);
}

#[test]
fn a_flooding_peer_is_held_to_its_frame_budget() {
    let start = Instant::now();
    let mut budget = FrameBudget::new(start, 100);
    let taken = (0..1_000).filter(|_| budget.take(start)).count();
    assert_eq!(taken, 100, "one second's burst, then nothing");
    let later = start + Duration::from_millis(500);
    let taken = (0..1_000).filter(|_| budget.take(later)).count();
    assert_eq!(taken, 50, "refilled at the configured rate");
}
