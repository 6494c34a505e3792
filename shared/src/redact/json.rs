//! Redacting every string inside a JSON value (event payloads, webhook bodies, tool arguments),
//! keys left alone: a payload's shape stays what its readers expect.

use serde_json::Value;

use super::Redactor;

/// Deepest nesting walked; deeper values are replaced by [`super::TRUNCATED`] rather than kept.
const MAX_DEPTH: usize = 64;

impl Redactor {
    /// Replaces personal data in every string of `value`, in place; returns how many findings.
    pub fn redact_json(&self, value: &mut Value) -> usize {
        self.redact_json_keeping(value, &[])
    }

    /// As [`Redactor::redact_json`], but values under the object keys in `keep` (at any depth)
    /// are left as they are: a call's own numbers and ids, which its record is keyed by.
    pub fn redact_json_keeping(&self, value: &mut Value, keep: &[&str]) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.walk(value, keep, 0)
    }

    fn walk(&self, value: &mut Value, keep: &[&str], depth: usize) -> usize {
        if depth > MAX_DEPTH {
            *value = Value::String(super::TRUNCATED.to_owned());
            return 0;
        }
        match value {
            Value::String(s) => {
                let (out, found) = self.redact(s);
                if !found.is_empty() || out.len() != s.len() {
                    *s = out;
                }
                found.len()
            }
            Value::Array(items) => items
                .iter_mut()
                .map(|v| self.walk(v, keep, depth + 1))
                .sum(),
            Value::Object(map) => map
                .iter_mut()
                .filter(|(k, _)| !keep.contains(&k.as_str()))
                .map(|(_, v)| self.walk(v, keep, depth + 1))
                .sum(),
            _ => 0,
        }
    }
}
