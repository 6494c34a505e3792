//! Checks on the providers the demo agent will talk to. An agent without `llm` or `stt` sections
//! uses the edge's defaults, read from its environment ([`VoiceDefaults::from_env`]): offline
//! rules and pocketsphinx, or OpenAI-compatible servers. This names which, refuses a base URL
//! that is not http(s), and with `--online` tries to reach each configured server. Keys are
//! never printed; only the variable they came from.

use std::time::Duration;

use freya_edge::voice::VoiceDefaults;

use super::Check;

/// How long a configured server gets to answer with `--online`.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// One OpenAI-compatible server the defaults name.
struct Endpoint {
    /// The report line.
    check: &'static str,
    /// The variable that set the URL (or implied it, for `OPENAI_API_KEY`).
    variable: &'static str,
    url: String,
    /// The variable the key came from, if any.
    key_from: Option<&'static str>,
    /// The model asked for, when known.
    model: Option<String>,
}

fn is_set(environment: &[(String, String)], name: &str) -> bool {
    environment
        .iter()
        .any(|(n, v)| n == name && !v.trim().is_empty())
}

pub(super) async fn check(environment: &[(String, String)], online: bool) -> Vec<Check> {
    let defaults = VoiceDefaults::from_env(environment.iter().cloned());
    let llm = defaults.llm_base_url.clone().map(|url| Endpoint {
        check: "default LLM",
        variable: if is_set(environment, "FREYA_LLM_BASE_URL") {
            "FREYA_LLM_BASE_URL"
        } else {
            "OPENAI_API_KEY"
        },
        url,
        key_from: if is_set(environment, "FREYA_LLM_API_KEY") {
            Some("FREYA_LLM_API_KEY")
        } else if is_set(environment, "OPENAI_API_KEY") {
            Some("OPENAI_API_KEY")
        } else {
            None
        },
        model: Some(defaults.llm_model.clone()),
    });
    let stt = defaults.stt_base_url.clone().map(|url| Endpoint {
        check: "default STT",
        variable: "FREYA_STT_BASE_URL",
        url,
        key_from: defaults.stt_api_key.as_ref().map(|_| "FREYA_STT_API_KEY"),
        model: defaults.stt_model.clone(),
    });
    let client = reqwest::Client::builder()
        .timeout(REACH_TIMEOUT)
        .connect_timeout(REACH_TIMEOUT)
        .build()
        .ok()
        .filter(|_| online);
    let mut checks = Vec::new();
    match llm {
        Some(endpoint) => checks.push(endpoint_check(&endpoint, client.as_ref()).await),
        None => checks.push(Check::passed(
            "default LLM",
            "offline rules (FREYA_LLM_BASE_URL or OPENAI_API_KEY would name a language model)",
        )),
    }
    match stt {
        Some(endpoint) => checks.push(endpoint_check(&endpoint, client.as_ref()).await),
        None => checks.push(Check::passed(
            "default STT",
            "offline pocketsphinx (FREYA_STT_BASE_URL would name a transcription server)",
        )),
    }
    checks
}

/// Whether `url` is an http(s) URL with a host; the reason when not.
fn http_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(parsed)
}

async fn endpoint_check(endpoint: &Endpoint, client: Option<&reqwest::Client>) -> Check {
    let url = match http_url(&endpoint.url) {
        Ok(url) => url,
        Err(why) => {
            return Check::failed(
                endpoint.check,
                format!(
                    "{} `{}` is not an http(s) URL: {why}",
                    endpoint.variable, endpoint.url
                ),
                format!(
                    "set {} to e.g. http://localhost:11434/v1, or unset it",
                    endpoint.variable
                ),
            )
        }
    };
    let mut detail = format!("OpenAI-compatible at {url}");
    if let Some(model) = &endpoint.model {
        detail.push_str(&format!(", model {model}"));
    }
    match endpoint.key_from {
        Some(variable) => detail.push_str(&format!(", key from {variable}")),
        None => detail.push_str(", no key"),
    }
    let Some(client) = client else {
        return Check::passed(endpoint.check, detail);
    };
    // Any HTTP answer (even 401 or 404 at the API root) means the server is there.
    match client.get(url.clone()).send().await {
        Ok(response) => Check::passed(
            endpoint.check,
            format!("{detail}; reachable (HTTP {})", response.status().as_u16()),
        ),
        Err(e) => Check::failed(
            endpoint.check,
            format!("{detail}; unreachable: {}", innermost(&e)),
            if endpoint.variable == "OPENAI_API_KEY" {
                "check this machine's network, or unset OPENAI_API_KEY for the offline default"
                    .to_owned()
            } else {
                format!(
                    "start the server or correct {}, or unset it for the offline default",
                    endpoint.variable
                )
            },
        ),
    }
}

/// The deepest cause of `error` ("Connection refused", "dns error: ..."), which says more than
/// reqwest's own "error sending request".
fn innermost(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", REACH_TIMEOUT.as_secs());
    }
    let mut cause: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn no_environment_means_the_offline_demo() {
        let checks = check(&[], false).await;
        let text: Vec<String> = checks.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("offline rules"), "{text:?}");
        assert!(text[1].contains("offline pocketsphinx"), "{text:?}");
        assert!(checks.iter().all(|c| !c.is_failed()));
    }

    #[tokio::test]
    async fn configured_servers_are_named_without_their_keys() {
        let checks = check(
            &vars(&[
                ("OPENAI_API_KEY", "sk-secret"),
                ("FREYA_STT_BASE_URL", "http://localhost:8000/v1"),
            ]),
            false,
        )
        .await;
        let text = format!("{}\n{}", checks[0], checks[1]);
        assert!(
            text.contains("OpenAI-compatible at https://api.openai.com/v1"),
            "{text}"
        );
        assert!(text.contains("key from OPENAI_API_KEY"), "{text}");
        assert!(
            text.contains("OpenAI-compatible at http://localhost:8000/v1"),
            "{text}"
        );
        assert!(!text.contains("sk-secret"), "{text}");
    }

    #[tokio::test]
    async fn a_base_url_that_is_not_http_fails_naming_the_variable() {
        let checks = check(&vars(&[("FREYA_LLM_BASE_URL", "localhost:11434")]), false).await;
        assert!(checks[0].is_failed(), "{}", checks[0]);
        assert!(
            checks[0].to_string().contains("FREYA_LLM_BASE_URL"),
            "{}",
            checks[0]
        );
    }

    #[tokio::test]
    async fn online_an_unreachable_server_fails_and_a_listening_one_passes() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let url = format!("http://127.0.0.1:{closed_port}/v1");
        let checks = check(&vars(&[("FREYA_STT_BASE_URL", &url)]), true).await;
        assert!(checks[1].is_failed(), "{}", checks[1]);

        let server = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = server.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let url = format!("http://{addr}/v1");
        let checks = check(&vars(&[("FREYA_LLM_BASE_URL", &url)]), true).await;
        assert!(!checks[0].is_failed(), "{}", checks[0]);
        assert!(
            checks[0].to_string().contains("reachable (HTTP 404)"),
            "{}",
            checks[0]
        );
    }
}
