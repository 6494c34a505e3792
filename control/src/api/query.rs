//! Query strings and cursors. A query string is parsed strictly (an unknown or malformed
//! parameter is a 400 naming it, as problem+json); list cursors are opaque strings that encode
//! the position `(time, id)` of the last item of a page, so pages stay stable while rows arrive.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::Problem;
use freya_shared::model::FieldError;

/// A query string parsed into `T` (which should `deny_unknown_fields`).
pub(crate) struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| StrictQuery(value))
            .map_err(|e| {
                let detail = e.body_text();
                let field = detail.split('`').nth(1).unwrap_or("query").to_owned();
                bad_parameter(&field, &detail)
            })
    }
}

/// 400 naming the query parameter that is wrong.
pub(crate) fn bad_parameter(field: &str, message: &str) -> Problem {
    Problem {
        errors: vec![FieldError::new(field, message)],
        ..Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid query parameter",
            format!("{field}: {message}"),
        )
    }
}

/// The opaque form of a position in a list.
pub(crate) fn encode_cursor(at_ms: i64, id: &str) -> String {
    hex::encode(format!("{at_ms}:{id}"))
}

/// The position a cursor encodes, or a 400 naming `cursor`.
pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, String), Problem> {
    let invalid = || bad_parameter("cursor", "not a cursor from a previous page");
    let text = hex::decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse().map_err(|_| invalid())?;
    if !freya_shared::ids::is_uuid(id) {
        return Err(invalid());
    }
    Ok((at, id.to_owned()))
}

/// An RFC 3339 time parameter as epoch milliseconds, or a 400 naming `field`.
pub(crate) fn parse_time(field: &str, value: &str) -> Result<i64, Problem> {
    let at = humantime::parse_rfc3339_weak(value)
        .map_err(|_| bad_parameter(field, "must be an RFC 3339 time like 2025-01-31T12:00:00Z"))?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad_parameter(field, "must be after 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| bad_parameter(field, "is too far in the future"))
}

/// 422 unless `from_ms` is before `to_ms`: a range that ends before it starts (or as it starts)
/// holds nothing, and answering it with an empty page would hide the caller's mistake. Both
/// parameters are named, since either may be the wrong one.
pub(crate) fn ordered_range(from_ms: i64, to_ms: i64) -> Result<(), Problem> {
    if from_ms < to_ms {
        return Ok(());
    }
    Err(Problem {
        errors: vec![
            FieldError::new("from", "must be before `to`"),
            FieldError::new("to", "must be after `from`"),
        ],
        ..Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid time range",
            "`from` must be before `to`",
        )
    })
}

/// A page size parameter: 1 to 200, 50 when absent.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<i64, Problem> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(i64::from(n)),
        Some(_) => Err(bad_parameter("limit", "must be between 1 and 200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = freya_shared::ids::new_id();
        assert_eq!(
            decode_cursor(&encode_cursor(42, &id)).expect("cursor"),
            (42, id)
        );
        let err = decode_cursor("zz").unwrap_err();
        assert_eq!(err.errors[0].field, "cursor");
        assert!(decode_cursor(&hex::encode("1:not-a-uuid")).is_err());
    }

    #[test]
    fn times_parse_as_rfc3339() {
        assert_eq!(
            parse_time("from", "2023-11-14T22:13:20.123Z").expect("time"),
            1_700_000_000_123
        );
        assert_eq!(
            parse_time("to", "yesterday").unwrap_err().errors[0].field,
            "to"
        );
    }

    #[test]
    fn a_range_that_ends_before_it_starts_names_both_ends() {
        assert!(ordered_range(1, 2).is_ok());
        for (from, to) in [(2, 1), (1, 1)] {
            let problem = ordered_range(from, to).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
            let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["from", "to"]);
        }
    }
}
