//! Redacting every string inside a JSON value (event payloads, webhook bodies, tool arguments),
//! keys left alone: a payload's shape stays what its readers expect.

use serde_json::Value;

use super::Redactor;

/// Deepest nesting walked; deeper values are replaced by [`super::TRUNCATED`] rather than kept.
const MAX_DEPTH: usize = 64;

impl Redactor {
    /// Replaces personal data in every string of `value`, in place; returns how many findings.
    pub fn redact_json(&self, value: &mut Value) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.walk(value, 0)
    }

    fn walk(&self, value: &mut Value, depth: usize) -> usize {
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
            Value::Array(items) => items.iter_mut().map(|v| self.walk(v, depth + 1)).sum(),
            Value::Object(map) => map.values_mut().map(|v| self.walk(v, depth + 1)).sum(),
            _ => 0,
        }
    }
}
