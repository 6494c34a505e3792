//! Strict JSON bodies: syntax errors are a 400 with the line and column, a wrong type is a 422
//! naming the field's path, and an unknown field is a 422 naming it — a typo in a field name must
//! never be silently ignored. PATCH bodies are JSON merge patches (RFC 7396) applied to the stored
//! document, then checked the same way.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use freya_shared::model::FieldError;

/// A request body parsed strictly into `T`.
pub(crate) struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = json_body(request, state).await?;
        Ok(StrictJson(strict_from_value(value)?))
    }
}

/// A request body parsed as any JSON object (for merge patches).
pub(crate) struct JsonObject(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = json_body(request, state).await?;
        if !value.is_object() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Malformed JSON",
                "the body must be a JSON object",
            ));
        }
        Ok(JsonObject(value))
    }
}

/// A request body parsed as any JSON value, for a handler that parses it further itself.
pub(crate) struct JsonValue(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonValue {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(JsonValue(json_body(request, state).await?))
    }
}

async fn json_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<serde_json::Value, Problem> {
    let headers = request.headers().clone();
    if !is_json(&headers) {
        return Err(not_json());
    }
    let bytes = Bytes::from_request(request, state).await.map_err(|e| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Body rejected",
            e.body_text(),
        )
    })?;
    parse_body(&headers, &bytes)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime == "application/json" || mime.ends_with("+json")
        })
}

fn not_json() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported media type",
        "send the body as `Content-Type: application/json`",
    )
}

/// A JSON body already read (by a handler that also needs its bytes), checked like
/// [`StrictJson`] does: the content type, then the syntax.
pub(crate) fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<serde_json::Value, Problem> {
    if !is_json(headers) {
        return Err(not_json());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Malformed JSON",
            format!("line {} column {}: {e}", e.line(), e.column()),
        )
    })
}

/// Deserializes `value` into `T`, naming the path of a wrongly typed field and every unknown one.
pub(crate) fn strict_from_value<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, Problem> {
    let mut unknown = Vec::new();
    let parsed: Result<T, _> = {
        let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(value, &mut note_unknown);
        serde_path_to_error::deserialize(ignored)
    };
    match parsed {
        Ok(_) if !unknown.is_empty() => Err(Problem::invalid(
            unknown
                .into_iter()
                .map(|field| FieldError::new(field, "unknown field"))
                .collect(),
        )),
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            let message = e.into_inner().to_string();
            // A missing field is reported by serde at the parent level; name the field itself.
            let field = match missing_field_name(&message) {
                Some(name) if field.is_empty() => name.to_owned(),
                Some(name) => format!("{field}.{name}"),
                None => field,
            };
            Err(Problem::invalid(vec![FieldError::new(field, message)]))
        }
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// Applies an RFC 7396 merge patch: objects merge key by key, `null` removes, anything else
/// replaces.
pub(crate) fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    match patch {
        serde_json::Value::Object(fields) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            if let serde_json::Value::Object(existing) = target {
                for (key, value) in fields {
                    if value.is_null() {
                        existing.remove(&key);
                    } else {
                        merge_patch(
                            existing.entry(key).or_insert(serde_json::Value::Null),
                            value,
                        );
                    }
                }
            }
        }
        other => *target = other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        name: String,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        count: u32,
    }

    fn fields(problem: Problem) -> Vec<String> {
        problem.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let err = strict_from_value::<Spec>(json!({"name": "a", "nmae": 1, "inner": {"cuont": 2}}))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fields(err), ["inner.cuont", "nmae"]);
    }

    #[test]
    fn wrong_types_and_missing_fields_are_named() {
        let wrong =
            strict_from_value::<Spec>(json!({"name": "a", "inner": {"count": "x"}})).unwrap_err();
        assert_eq!(fields(wrong), ["inner.count"]);
        let missing = strict_from_value::<Spec>(json!({"inner": {}})).unwrap_err();
        assert_eq!(fields(missing), ["name"]);
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }
}
