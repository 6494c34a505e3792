//! The user part of a SIP URI (RFC 3261 section 25.1), checked before a value becomes the From
//! user or the dialled number of an outbound call: `user = 1*( unreserved / escaped /
//! user-unreserved )`. A value outside the grammar — `@`, `>`, `<`, spaces, line breaks — could
//! end the URI or the header and write SIP of the caller's choosing, so it is refused, never sent.

/// Longest user part accepted (numbers and caller ids are far shorter).
pub const MAX_SIP_USER_LEN: usize = 128;

/// Why `user` is not a SIP URI user part, or `None` when it is one.
pub fn sip_user_problem(user: &str) -> Option<&'static str> {
    if user.is_empty() || user.len() > MAX_SIP_USER_LEN {
        return Some("must be 1-128 characters");
    }
    let bytes = user.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let unreserved = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        let user_unreserved = matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/');
        if unreserved || user_unreserved {
            i += 1;
        } else if b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
        } else {
            return Some(
                "must be a SIP user part: letters, digits, -_.!~*'()&=+$,;?/ and %XX escapes",
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_rfc_3261_user_characters_pass() {
        for user in [
            "+15550100",
            "alice",
            "demo",
            "a.b-c_d!~*'()",
            "x&y=z+1$,;?/",
            "%40ok",
        ] {
            assert_eq!(sip_user_problem(user), None, "{user}");
        }
    }

    #[test]
    fn characters_that_end_a_uri_or_header_are_refused() {
        for user in [
            "",
            "a@evil.example",
            "a>",
            "<a",
            "a b",
            "a\r\nVia: x",
            "a\"b",
            "#1",
            "a:b",
            "%4",
            "%zz",
            "é",
        ] {
            assert!(sip_user_problem(user).is_some(), "{user:?}");
        }
        assert!(sip_user_problem(&"1".repeat(129)).is_some());
    }
}
