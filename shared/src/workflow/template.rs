//! `{{var}}` and `{{a.b}}` templating for what a flow says, sends and dials. A template is parsed
//! once at validation, which also lists the variables it reads so that a name that can never be
//! defined is refused before a call ever hits it; rendering at run time never fails — a variable
//! not set yet renders as nothing — and never panics, whatever the values hold.
//!
//! A template that is a URL renders with [`Template::render_url`]: each value is percent-encoded
//! for the part of the URL it lands in (path-segment rules in the path, query rules in the query
//! and fragment, and neither `/`, `@`, `?` nor `#` in the host), so a value such as
//! `../../admin?x=1#` stays inside its path segment or query parameter and cannot change which
//! resource, host or parameters the URL names.

use serde_json::Value;

use super::Variables;

/// A problem with a template's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    #[error("`{{{{` at byte {at} is never closed with `}}}}`")]
    Unclosed { at: usize },
    /// What is between the braces is not a (dotted) variable name.
    #[error("`{{{{{name}}}}}` is not a variable name: use letters, digits and `_`, parts separated by `.`")]
    BadName { name: String },
}

/// A variable reference with an optional path into its value: `customer.address.city`, `items.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarPath {
    parts: Vec<String>,
}

impl VarPath {
    /// Parses a dotted name such as `customer.tier`.
    pub fn parse(name: &str) -> Result<Self, TemplateError> {
        let bad = || TemplateError::BadName { name: name.into() };
        let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
        let valid_part =
            |p: &String| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !parts.iter().all(valid_part) || !parts[0].starts_with(|c: char| !c.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self { parts })
    }

    /// The variable this path starts from.
    pub fn root(&self) -> &str {
        // `parse` refuses an empty name, so there is always a first part.
        self.parts.first().map(String::as_str).unwrap_or_default()
    }

    /// The value at this path, if the variable is set and the path leads somewhere.
    pub fn lookup<'v>(&self, vars: &'v Variables) -> Option<&'v Value> {
        let (root, rest) = self.parts.split_first()?;
        rest.iter()
            .try_fold(vars.get(root)?, |value, part| match value {
                Value::Object(map) => map.get(part),
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(VarPath),
}

/// A parsed text template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses `source`, refusing unclosed braces and malformed names.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or(TemplateError::Unclosed { at: offset + open })?;
            segments.push(Segment::Var(VarPath::parse(after[..close].trim())?));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Self { segments })
    }

    /// The variables this template reads (roots of the paths), in order, possibly repeated.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(path) => Some(path.root()),
            Segment::Text(_) => None,
        })
    }

    /// The template filled in from `vars`; unset variables render as nothing.
    pub fn render(&self, vars: &Variables) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }

    /// Appends the rendered template to `out`.
    pub fn render_into(&self, vars: &Variables, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(path) => {
                    if let Some(value) = path.lookup(vars) {
                        push_value(value, out);
                    }
                }
            }
        }
    }

    /// The template filled in as a URL: values percent-encoded for where they land (see the
    /// module comment). A value before the literal `://` (a whole base URL taken from a variable)
    /// is inserted as it is: the workflow's author chose to take the destination from it, and
    /// the egress guard still checks where it leads. A value made only of dots in the path
    /// renders as nothing, since URL parsers read `.`/`..` (even percent-encoded) as dot segments.
    pub fn render_url(&self, vars: &Variables) -> String {
        let mut out = String::new();
        let mut part = UrlPart::Scheme;
        let mut value = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => {
                    out.push_str(text);
                    part = part.after_literal(&out, text);
                }
                Segment::Var(path) => {
                    let Some(found) = path.lookup(vars) else {
                        continue;
                    };
                    value.clear();
                    push_value(found, &mut value);
                    match part {
                        UrlPart::Scheme => out.push_str(&value),
                        UrlPart::Path if value.chars().all(|c| c == '.') => {}
                        _ => percent_encode_into(&value, part, &mut out),
                    }
                }
            }
        }
        out
    }

    /// The variable this template is made of alone (`"{{customer}}"`), if it is only that.
    fn whole_variable(&self) -> Option<&VarPath> {
        match self.segments.as_slice() {
            [Segment::Var(path)] => Some(path),
            _ => None,
        }
    }

    fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Text(_)))
    }
}

/// Where in a URL rendering has reached, by the literal text so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    /// Before `://`.
    Scheme,
    /// Between `://` and the first `/`, `?` or `#`: user info, host and port.
    Authority,
    Path,
    Query,
    Fragment,
}

impl UrlPart {
    /// The part after appending literal `text`; `rendered` is everything so far, `text` included.
    /// Leaving the scheme, the whole URL after `://` is scanned, so a base URL taken from a
    /// variable counts with its own `/`, `?` and `#`.
    fn after_literal(self, rendered: &str, text: &str) -> Self {
        if self != UrlPart::Scheme {
            return self.after_chars(text);
        }
        match rendered.find("://") {
            Some(at) => UrlPart::Authority.after_chars(rendered.get(at + 3..).unwrap_or_default()),
            None => UrlPart::Scheme,
        }
    }

    fn after_chars(self, text: &str) -> Self {
        text.chars().fold(self, |part, c| match (part, c) {
            (UrlPart::Authority, '/') => UrlPart::Path,
            (UrlPart::Authority | UrlPart::Path, '?') => UrlPart::Query,
            (UrlPart::Authority | UrlPart::Path | UrlPart::Query, '#') => UrlPart::Fragment,
            (part, _) => part,
        })
    }
}

/// Appends `value` with every byte percent-encoded that is not allowed raw in `part`: in a path
/// segment RFC 3986 `pchar` less nothing that could end the segment (`/`, `?`, `#` and `%` are
/// encoded); in the authority only unreserved characters and `:` stay; in a query or fragment
/// only unreserved characters, so `&`, `=`, `+` cannot add parameters.
fn percent_encode_into(value: &str, part: UrlPart, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in value.as_bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        let raw = unreserved
            || match part {
                UrlPart::Path => matches!(
                    byte,
                    b'!' | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                ),
                UrlPart::Authority => byte == b':',
                UrlPart::Scheme | UrlPart::Query | UrlPart::Fragment => false,
            };
        if raw {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// How a value reads inside text: strings bare, null empty, anything else as JSON.
fn push_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Array(_) | Value::Object(_) => {
            out.push_str(&serde_json::to_string(value).unwrap_or_default())
        }
    }
}

/// A JSON document whose strings are templates, such as a `function` node's body. A string that
/// is exactly one `{{var}}` is replaced by the variable's value with its JSON type kept.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// A value with no template in it.
    Literal(Value),
    /// A string with text around its variables.
    Text(Template),
    /// A string that is only `{{var}}`: the value itself (null when unset).
    Whole(VarPath),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses every string in `value`; errors carry the JSON path below `value` (`.a[0]`).
    pub fn parse(value: &Value) -> Result<Self, Vec<(String, TemplateError)>> {
        let mut errors = Vec::new();
        let parsed = Self::parse_at(value, String::new(), &mut errors);
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    fn parse_at(value: &Value, path: String, errors: &mut Vec<(String, TemplateError)>) -> Self {
        match value {
            Value::String(s) => match Template::parse(s) {
                Ok(t) if t.is_literal() => Self::Literal(value.clone()),
                Ok(t) => match t.whole_variable() {
                    Some(var) => Self::Whole(var.clone()),
                    None => Self::Text(t),
                },
                Err(e) => {
                    errors.push((path, e));
                    Self::Literal(Value::Null)
                }
            },
            Value::Array(items) => Self::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::parse_at(v, format!("{path}[{i}]"), errors))
                    .collect(),
            ),
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::parse_at(v, format!("{path}.{k}"), errors)))
                    .collect(),
            ),
            other => Self::Literal(other.clone()),
        }
    }

    /// The variables this document reads (roots of the paths).
    pub fn variables(&self) -> Vec<&str> {
        let mut found = Vec::new();
        self.collect_variables(&mut found);
        found
    }

    fn collect_variables<'a>(&'a self, found: &mut Vec<&'a str>) {
        match self {
            Self::Literal(_) => {}
            Self::Text(t) => found.extend(t.variables()),
            Self::Whole(path) => found.push(path.root()),
            Self::Array(items) => items.iter().for_each(|i| i.collect_variables(found)),
            Self::Object(fields) => fields.iter().for_each(|(_, v)| v.collect_variables(found)),
        }
    }

    /// The document filled in from `vars`.
    pub fn render(&self, vars: &Variables) -> Value {
        match self {
            Self::Literal(v) => v.clone(),
            Self::Text(t) => Value::String(t.render(vars)),
            Self::Whole(path) => path.lookup(vars).cloned().unwrap_or(Value::Null),
            Self::Array(items) => Value::Array(items.iter().map(|i| i.render(vars)).collect()),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(vars)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.insert("business".into(), json!("Acme"));
        v.insert(
            "customer".into(),
            json!({"tier": "gold", "visits": 3, "tags": ["a", "b"]}),
        );
        v
    }

    #[test]
    fn variables_and_paths_render_from_the_map() {
        let t = Template::parse("Welcome to {{business}}, {{ customer.tier }} member #{{customer.visits}} ({{customer.tags.1}})").expect("parses");
        assert_eq!(t.render(&vars()), "Welcome to Acme, gold member #3 (b)");
        assert_eq!(
            t.variables().collect::<Vec<_>>(),
            ["business", "customer", "customer", "customer"]
        );
    }

    #[test]
    fn unset_variables_and_dead_paths_render_as_nothing() {
        let t = Template::parse("[{{nobody}}][{{business.name}}][{{customer.tags.9}}]")
            .expect("parses");
        assert_eq!(t.render(&vars()), "[][][]");
    }

    #[test]
    fn malformed_templates_are_refused_with_the_reason() {
        assert_eq!(
            Template::parse("Hi {{name"),
            Err(TemplateError::Unclosed { at: 3 })
        );
        assert_eq!(
            Template::parse("Hi {{first name}}"),
            Err(TemplateError::BadName {
                name: "first name".into()
            })
        );
        assert!(Template::parse("{{}}").is_err());
        assert!(Template::parse("{{a..b}}").is_err());
        assert!(Template::parse("{{1abc}}").is_err());
        assert!(Template::parse("plain } text { here").is_ok());
    }

    #[test]
    fn json_bodies_keep_types_of_whole_variables_and_report_paths_of_errors() {
        let body = JsonTemplate::parse(&json!({"who": "{{customer}}", "line": "tier {{customer.tier}}", "n": 1, "list": ["{{business}}"]})).expect("parses");
        assert_eq!(
            body.render(&vars()),
            json!({"who": {"tier": "gold", "visits": 3, "tags": ["a", "b"]}, "line": "tier gold", "n": 1, "list": ["Acme"]})
        );
        let errors = JsonTemplate::parse(&json!({"a": ["ok", "{{bad"]})).expect_err("refused");
        assert_eq!(errors[0].0, ".a[1]");
    }

    fn attack() -> Variables {
        let mut v = Variables::new();
        v.insert("id".into(), json!("../../admin?x=1#"));
        v.insert("dots".into(), json!(".."));
        v.insert("q".into(), json!("a b&c=d#e"));
        v.insert("host".into(), json!("evil.example/x?@"));
        v.insert("base".into(), json!("https://api.example.com"));
        v
    }

    #[test]
    fn a_path_value_stays_inside_its_segment() {
        let t = Template::parse("https://api.example.com/users/{{id}}/orders").expect("parses");
        let url = t.render_url(&attack());
        assert_eq!(
            url,
            "https://api.example.com/users/..%2F..%2Fadmin%3Fx=1%23/orders"
        );
        // The URL still names the same host, the same path depth, and no query or fragment.
        let tail = url
            .strip_prefix("https://api.example.com")
            .expect("same host");
        assert_eq!(tail.matches('/').count(), 3);
        assert!(!url.contains('?') && !url.contains('#'));
        let dots = Template::parse("https://h.example/a/{{dots}}/b").expect("parses");
        assert_eq!(dots.render_url(&attack()), "https://h.example/a//b");
    }

    #[test]
    fn a_query_value_cannot_add_parameters_or_a_fragment() {
        let t = Template::parse("https://h.example/search?q={{q}}&page=1#{{id}}").expect("parses");
        assert_eq!(
            t.render_url(&attack()),
            "https://h.example/search?q=a%20b%26c%3Dd%23e&page=1#..%2F..%2Fadmin%3Fx%3D1%23"
        );
        let id = Template::parse("https://h.example/s?id={{id}}").expect("parses");
        assert_eq!(
            id.render_url(&attack()),
            "https://h.example/s?id=..%2F..%2Fadmin%3Fx%3D1%23"
        );
    }

    #[test]
    fn a_host_value_cannot_end_the_host_and_a_leading_base_is_kept() {
        let t = Template::parse("https://{{host}}.example.com/x").expect("parses");
        assert_eq!(
            t.render_url(&attack()),
            "https://evil.example%2Fx%3F%40.example.com/x"
        );
        let base = Template::parse("{{base}}/v1/{{id}}").expect("parses");
        assert_eq!(
            base.render_url(&attack()),
            "https://api.example.com/v1/..%2F..%2Fadmin%3Fx=1%23"
        );
        // Text rendering (what is said or sent as a body) is unchanged.
        assert_eq!(
            base.render(&attack()),
            "https://api.example.com/v1/../../admin?x=1#"
        );
    }
}
