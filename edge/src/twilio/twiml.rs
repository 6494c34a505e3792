//! The TwiML the edge answers Twilio's voice webhook with: connect the call to a bidirectional
//! media stream on this edge (`<Connect><Stream>`), with custom parameters the stream's `start`
//! message carries back; or refuse it (`<Reject>`). Values are XML-escaped. The reverse —
//! finding the stream in a TwiML document — serves the fake Twilio of the tests.

/// `<Response><Connect><Stream url=…>` with `<Parameter>`s.
pub(crate) fn connect_stream(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect>"#);
    xml.push_str(&format!(r#"<Stream url="{}">"#, escape(stream_url)));
    for (name, value) in parameters {
        xml.push_str(&format!(
            r#"<Parameter name="{}" value="{}"/>"#,
            escape(name),
            escape(value)
        ));
    }
    xml.push_str("</Stream></Connect></Response>");
    xml
}

/// `<Response><Dial>…</Dial>`: what a live call is redirected to when the agent transfers it —
/// a phone number, or a SIP URI (`sip:…`, dialled with `<Sip>`).
pub(crate) fn dial(destination: &str) -> String {
    let target = if destination.starts_with("sip:") || destination.starts_with("sips:") {
        format!("<Sip>{}</Sip>", escape(destination))
    } else {
        escape(destination)
    };
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{target}</Dial></Response>"#)
}

/// `<Response><Reject reason=…/>`: `busy` or `rejected`.
pub(crate) fn reject(reason: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="{}"/></Response>"#,
        escape(reason)
    )
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `<Stream>` of a `<Connect>` as a stream client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectStream {
    pub url: String,
    pub parameters: Vec<(String, String)>,
}

/// The value of attribute `name` in the tag text `tag`.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag.get(start..)?.find('"')? + start;
    Some(unescape(tag.get(start..end)?))
}

/// The `<Connect><Stream>` of a TwiML document written like [`connect_stream`] writes it
/// (attributes in double quotes), if it has one.
pub(crate) fn find_connect_stream(twiml: &str) -> Option<ConnectStream> {
    let connect = twiml.find("<Connect")?;
    let rest = twiml.get(connect..)?;
    let stream = rest.find("<Stream")?;
    let rest = rest.get(stream..)?;
    let tag_end = rest.find('>')?;
    let url = attribute(rest.get(..tag_end)?, "url")?;
    let body_end = rest.find("</Stream>").unwrap_or(rest.len());
    let mut parameters = Vec::new();
    let mut body = rest.get(tag_end..body_end)?;
    while let Some(at) = body.find("<Parameter") {
        let tag = body.get(at..)?;
        let end = tag.find("/>")?;
        let tag_text = tag.get(..end)?;
        if let (Some(name), Some(value)) =
            (attribute(tag_text, "name"), attribute(tag_text, "value"))
        {
            parameters.push((name, value));
        }
        body = tag.get(end..)?;
    }
    Some(ConnectStream { url, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_stream_round_trips_with_escaped_values() {
        let xml = connect_stream(
            "wss://edge.example/twilio/media",
            &[("ticket", "a&b\"<c>"), ("to", "+15550100")],
        );
        assert!(xml.contains(r#"<Stream url="wss://edge.example/twilio/media">"#));
        assert!(xml.contains("a&amp;b&quot;&lt;c&gt;"));
        let found = find_connect_stream(&xml).expect("a stream");
        assert_eq!(found.url, "wss://edge.example/twilio/media");
        assert_eq!(
            found.parameters,
            [
                ("ticket".to_owned(), "a&b\"<c>".to_owned()),
                ("to".to_owned(), "+15550100".to_owned())
            ]
        );
        assert_eq!(find_connect_stream(&reject("busy")), None);
    }

    #[test]
    fn a_transfer_dials_a_number_or_a_sip_uri_escaped() {
        assert!(dial("+15559990000").contains("<Response><Dial>+15559990000</Dial></Response>"));
        assert!(dial("sip:desk@pbx.example;x=<1>")
            .contains("<Dial><Sip>sip:desk@pbx.example;x=&lt;1&gt;</Sip></Dial>"));
    }
}
