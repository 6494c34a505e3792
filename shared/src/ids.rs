//! Identifiers and timestamps in the portable form the store uses: UUIDv7 strings (time-ordered,
//! so inserts do not pile onto one range of a distributed index) and milliseconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh UUIDv7 as a string: the id of every row and every event.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Wall-clock milliseconds since the Unix epoch: how every time is stored.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `s` is a UUID in canonical text form, so a malformed id in a path is refused early.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// Epoch milliseconds as RFC 3339 (UTC), how times appear in JSON.
pub fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_time_ordered_uuids() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(is_uuid(&a) && is_uuid(&b));
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
