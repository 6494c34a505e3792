//! Reading the audit log: who did what to which resource and when, newest first, paged by an
//! opaque cursor over `(at_ms, id)`. Entries are written by each change's own transaction
//! (see `identity::insert_audit`), never here; what an update changed is described for its entry
//! by [`changed_fields`], which names each changed field by its path in the resource's JSON
//! (`llm.model`, `tools[0].url`) with its old and new value — and, for a secret, only that it
//! `"changed"`, so the log never holds a secret a reader of the API could not see. A page may
//! be narrowed by an [`AuditFilter`] in the query itself, so a filter finds old entries too.

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

use super::columns::from_columns;
use super::{parse_json, Store, StoreError, WorkspaceScope};

/// One audit-log entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: String,
    /// `user:<id>` or `api_key:<id>`.
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub detail: serde_json::Value,
    pub at_ms: i64,
    /// The client address the change came from; `None` for the system's own changes.
    pub source_ip: Option<String>,
}

/// Which entries a page holds; every field given must match (all `None`: every entry).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The start of the action: `agent.` for everything done to agents, `agent.updated` exactly
    /// those. Actions are lower case (give the prefix so: SQLite's `LIKE` ignores case for
    /// ASCII, PostgreSQL's does not); `%` and `_` in it are literal.
    pub action_prefix: Option<String>,
    /// `agent`, `phone_number`, `workflow`, `provider`, `webhook`, `api_key`, `member`, ...
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `user:<id>` or `api_key:<id>`.
    pub actor: Option<String>,
}

/// `text` for a `LIKE ... ESCAPE '\'` pattern that matches it literally.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// Up to `limit` entries of the scoped workspace older than `before` (newest first) that
    /// pass `filter`, and the position the next page starts after.
    pub async fn audit_page(
        &self,
        scope: &WorkspaceScope,
        filter: &AuditFilter,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<(Vec<AuditRecord>, Option<(i64, String)>), StoreError> {
        let limit = limit.clamp(1, 500);
        let (at, id) = before.unwrap_or((i64::MAX, String::new()));
        // Each filter given adds one condition with the next placeholder; the values are bound
        // in the same order below.
        let mut sql = String::from(
            "SELECT id, actor, action, resource_type, resource_id, detail, at_ms, source_ip FROM audit_log \
             WHERE workspace_id = $1 AND (at_ms < $2 OR (at_ms = $2 AND id < $3))",
        );
        let mut values = Vec::new();
        let conditions = [
            (
                "action LIKE $# ESCAPE '\\'",
                filter
                    .action_prefix
                    .as_deref()
                    .map(|p| format!("{}%", like_literal(p))),
            ),
            ("resource_type = $#", filter.resource_type.clone()),
            ("resource_id = $#", filter.resource_id.clone()),
            ("actor = $#", filter.actor.clone()),
        ];
        for (condition, value) in conditions {
            if let Some(value) = value {
                values.push(value);
                let placeholder = format!("${}", 3 + values.len());
                sql.push_str(" AND ");
                sql.push_str(&condition.replace("$#", &placeholder));
            }
        }
        sql.push_str(&format!(
            " ORDER BY at_ms DESC, id DESC LIMIT ${}",
            4 + values.len()
        ));
        let mut query = sqlx::query(&sql)
            .bind(&scope.workspace_id)
            .bind(at)
            .bind(&id);
        for value in &values {
            query = query.bind(value);
        }
        let rows = query.bind(limit + 1).fetch_all(self.pool()).await?;
        let mut entries = rows
            .iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(from_columns!(r => AuditRecord {
                    id, actor, action, resource_type, resource_id, at_ms, source_ip;
                    detail: parse_json("audit detail", &detail)?,
                }))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if entries.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            entries.pop();
            entries.last().map(|e| (e.at_ms, e.id.clone()))
        } else {
            None
        };
        Ok((entries, next))
    }
}

/// The fields whose values the audit log never holds: the secrets of agents (`api_key` of a
/// provider section, `tool_secret`), providers (`password`, `auth_token`) and webhooks (`secret`).
const SECRET_FIELDS: [&str; 5] = ["api_key", "tool_secret", "secret", "password", "auth_token"];

/// Most changed fields one entry lists; past it the entry says `"truncated": true`.
const MAX_CHANGES: usize = 100;

/// The `changes` of an update's audit entry: every leaf that differs between the `old` and `new`
/// JSON of the resource, by path, as `{"old": .., "new": ..}` (`null` where one side has none), or
/// `"changed"` for a secret. Objects and arrays are walked, never copied, so a section that was
/// removed whole (`"llm": null`) still shows its secrets only as `"changed"`.
pub(crate) fn changed_fields(old: &Value, new: &Value) -> Value {
    let mut changes = Map::new();
    let mut truncated = false;
    walk("", old, new, &mut changes, &mut truncated);
    let mut detail = Map::new();
    detail.insert("changes".into(), Value::Object(changes));
    if truncated {
        detail.insert("truncated".into(), Value::Bool(true));
    }
    Value::Object(detail)
}

/// Whether the field at `path` holds a secret (its last name is one of [`SECRET_FIELDS`]).
fn is_secret(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    SECRET_FIELDS.contains(&last)
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Map<String, Value>, truncated: &mut bool) {
    if old == new {
        return;
    }
    if out.len() >= MAX_CHANGES {
        *truncated = true;
        return;
    }
    if !path.is_empty() && is_secret(path) {
        out.insert(path.to_string(), Value::String("changed".into()));
        return;
    }
    let is_container = |v: &Value| v.is_object() || v.is_array();
    if !is_container(old) && !is_container(new) {
        let mut change = Map::new();
        change.insert("old".into(), old.clone());
        change.insert("new".into(), new.clone());
        out.insert(path.to_string(), Value::Object(change));
        return;
    }
    // A container on one side at least: walk into it, the other side read as empty.
    let null = Value::Null;
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Value::Array(_), _) | (_, Value::Array(_)) => {
            let (a, b) = (old.as_array(), new.as_array());
            let len = a.map_or(0, Vec::len).max(b.map_or(0, Vec::len));
            for i in 0..len {
                let at = format!("{path}[{i}]");
                let x = a.and_then(|a| a.get(i)).unwrap_or(&null);
                let y = b.and_then(|b| b.get(i)).unwrap_or(&null);
                walk(&at, x, y, out, truncated);
            }
        }
        _ => {
            let (a, b) = (old.as_object(), new.as_object());
            let mut keys: Vec<&String> = a.into_iter().flat_map(|m| m.keys()).collect();
            keys.extend(b.into_iter().flat_map(|m| m.keys()));
            keys.sort();
            keys.dedup();
            for key in keys {
                let x = a.and_then(|a| a.get(key)).unwrap_or(&null);
                let y = b.and_then(|b| b.get(key)).unwrap_or(&null);
                walk(&child(key), x, y, out, truncated);
            }
        }
    }
    // A scalar replaced by a container (or the reverse): the scalar side is named too.
    let scalar_side = |v: &Value| !is_container(v) && !v.is_null();
    if scalar_side(old) || scalar_side(new) {
        let mut change = Map::new();
        change.insert(
            "old".into(),
            if is_container(old) {
                Value::Null
            } else {
                old.clone()
            },
        );
        change.insert(
            "new".into(),
            if is_container(new) {
                Value::Null
            } else {
                new.clone()
            },
        );
        out.insert(path.to_string(), Value::Object(change));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_field_is_named_by_its_path_with_old_and_new() {
        let old = json!({"name": "Desk", "llm": {"provider": "openai", "model": "gpt-4o-mini"}});
        let new = json!({"name": "Desk", "llm": {"provider": "openai", "model": "gpt-4o"}});
        assert_eq!(
            changed_fields(&old, &new),
            json!({"changes": {"llm.model": {"old": "gpt-4o-mini", "new": "gpt-4o"}}})
        );
    }

    #[test]
    fn secrets_are_only_said_to_have_changed_even_when_their_section_goes() {
        let old = json!({"tool_secret": "old-s3cret", "llm": {"model": "m", "api_key": "sk-old"},
                         "tools": [{"name": "a", "url": "https://a"}]});
        let new = json!({"tool_secret": "new-s3cret", "tools": [], "end_call_phrases": ["bye"]});
        let detail = changed_fields(&old, &new);
        assert_eq!(
            detail,
            json!({"changes": {
                "tool_secret": "changed",
                "llm.api_key": "changed",
                "llm.model": {"old": "m", "new": null},
                "tools[0].name": {"old": "a", "new": null},
                "tools[0].url": {"old": "https://a", "new": null},
                "end_call_phrases[0]": {"old": null, "new": "bye"},
            }})
        );
        let text = detail.to_string();
        for secret in ["old-s3cret", "new-s3cret", "sk-old"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn an_unchanged_document_has_no_changes_and_many_are_capped() {
        let doc = json!({"a": 1, "b": [1, 2]});
        assert_eq!(changed_fields(&doc, &doc), json!({"changes": {}}));
        let many: Vec<u32> = (0..500).collect();
        let detail = changed_fields(&json!({"x": []}), &json!({"x": many}));
        assert_eq!(
            detail["changes"].as_object().map(Map::len),
            Some(MAX_CHANGES)
        );
        assert_eq!(detail["truncated"], true);
    }
}
