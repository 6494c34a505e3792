//! An error told with its causes on one line. Transport errors (reqwest, hyper, rustls) keep the
//! useful part in their sources: "error sending request" alone does not say that the name did
//! not resolve or the certificate was refused. Logs, webhook deliveries and tool failures all
//! show errors this one way.

/// `error` and each of its sources, `: `-separated, outermost first.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_follows_its_error() {
        let error = Outer(std::io::Error::other("dns error: no such host"));
        assert_eq!(
            error_chain(&error),
            "error sending request: dns error: no such host"
        );
    }

    #[test]
    fn an_error_without_a_source_is_its_message() {
        let error = std::io::Error::other("refused");
        assert_eq!(error_chain(&error), "refused");
    }
}
