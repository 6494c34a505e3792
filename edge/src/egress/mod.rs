//! The one egress guard for every HTTP request to a URL a customer supplied: webhooks, agent
//! tools, workflow `function` nodes and custom provider base URLs. [`Egress::client`] is a
//! `reqwest::Client` that
//! - resolves names through [`PublicOnlyResolver`], which drops every non-public address and
//!   hands reqwest only the checked ones, so it connects to exactly what was checked (no window
//!   for DNS rebinding between the check and the connect);
//! - never reads `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` (a proxy would resolve the name itself,
//!   past the resolver): only a proxy named in the configuration is used;
//! - follows no redirect (a 3xx is handed back as the answer), so a public server cannot bounce
//!   a request inward.
//!
//! reqwest does not ask the resolver about IP literals, so every request is first checked with
//! [`Egress::check_url`], which refuses literals that are not public. `allow_private_targets`
//! turns both checks off, for `freya dev` and tests whose fakes listen on 127.0.0.1. What counts
//! as public is [`address`], a pure function.

/// Which addresses are public: `freya-control`'s webhook guard and the egress bench.
pub mod address;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

pub use address::{is_public, NonPublic};

/// `[egress]`: where customer-supplied URLs may lead.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Let customer URLs reach loopback, private and other non-public addresses. Off in
    /// production; `freya dev` turns it on because its demo tool and fakes live on 127.0.0.1.
    #[serde(default)]
    pub allow_private_targets: bool,
    /// An explicit forward proxy (`http://proxy:3128`) for these requests. Proxy environment
    /// variables are never read. Through a proxy the proxy resolves names, so the resolver check
    /// does not apply: the proxy must refuse internal destinations itself.
    #[serde(default)]
    pub proxy: Option<String>,
}

/// Why a request to a customer URL was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// Not an absolute URL.
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    /// A scheme other than http or https.
    #[error("`{scheme}` URLs are not allowed (only http and https)")]
    Scheme { scheme: String },
    /// The URL has no host.
    #[error("the URL names no host")]
    NoHost,
    /// The URL names a non-public address literally.
    #[error("{ip} is a private address here ({reason}; {setting} is off)")]
    NonPublic {
        ip: IpAddr,
        reason: NonPublic,
        /// The configuration key that would allow it.
        setting: &'static str,
    },
    /// The configured proxy is unusable.
    #[error("egress.proxy `{proxy}` is unusable: {reason}")]
    Proxy { proxy: String, reason: String },
    /// The client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// The guarded HTTP client and the switch it was built with; cheap to clone.
#[derive(Clone, Debug)]
pub struct Egress {
    client: reqwest::Client,
    allow_private: bool,
    /// The configuration key named in refusals.
    setting: &'static str,
}

/// The edge's key for the switch, named in refusals.
pub const EDGE_SETTING: &str = "egress.allow_private_targets";

impl Egress {
    /// The guard with default client settings.
    pub fn new(config: &EgressConfig) -> Result<Self, EgressError> {
        Self::from_builder(config, reqwest::Client::builder(), EDGE_SETTING)
    }

    /// The guard on top of `builder` (for a caller's timeout or user agent); the guard's own
    /// settings — resolver, proxy, redirects — override whatever `builder` had for them.
    /// `setting` is the configuration key that refusals name (`webhooks.allow_private_targets`).
    pub fn from_builder(
        config: &EgressConfig,
        builder: reqwest::ClientBuilder,
        setting: &'static str,
    ) -> Result<Self, EgressError> {
        let mut builder = builder
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| EgressError::Proxy {
                proxy: proxy.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.proxy(proxy);
        }
        if !config.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver { setting }));
        }
        let client = builder
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))?;
        Ok(Self {
            client,
            allow_private: config.allow_private_targets,
            setting,
        })
    }

    /// The client; send only URLs that passed [`Egress::check_url`].
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Whether private targets are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// `url` parsed, if it may be requested: http(s), a host, and not a non-public IP literal.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, EgressError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| EgressError::NotAUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        check_parsed(&parsed, self.allow_private, self.setting)?;
        Ok(parsed)
    }
}

/// The check of [`Egress::check_url`] on a parsed URL.
pub fn check_parsed(
    url: &reqwest::Url,
    allow_private: bool,
    setting: &'static str,
) -> Result<(), EgressError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressError::Scheme {
            scheme: url.scheme().to_owned(),
        });
    }
    let host = url.host_str().ok_or(EgressError::NoHost)?;
    // The URL parser has already normalised IPv4 spellings (`2130706433`, `0x7f.1`) to dotted
    // form and IPv6 to brackets, so a literal is exactly what parses as an address here.
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if allow_private {
        return Ok(());
    }
    address::check(ip).map_err(|reason| EgressError::NonPublic {
        ip,
        reason,
        setting,
    })
}

/// Resolves names to their public addresses only; a name with none is an error naming it.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnlyResolver {
    /// The configuration key named in refusals.
    pub setting: &'static str,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let setting = self.setting;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public = public_addresses(&found);
            if public.is_empty() {
                return Err(format!("{host} has no public address ({setting} is off)").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The public ones of `found`, in order: what the resolver hands reqwest.
pub fn public_addresses(found: &[SocketAddr]) -> Vec<SocketAddr> {
    found
        .iter()
        .copied()
        .filter(|a| is_public(a.ip()))
        .collect()
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
