//! Declaring a metric and writing `/metrics`, the same in the edge and the control plane: a
//! metric is registered where it is made ([`registered`]), and a process's exposition is its own
//! registry followed by the certificates' expiry and one closing `# EOF` ([`render`]).

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

use super::certificates::CertificateExpiry;

/// Registers `metric` as `name` with `help` and hands it back, so that the handle the code
/// counts with and the series the registry shows are made in one place.
pub fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A process's whole exposition: `registry`, then `certificates`, then `# EOF`.
pub fn render(registry: &Registry, certificates: &CertificateExpiry) -> String {
    let mut out = without_eof(registry);
    out.push_str(&certificates.render());
    out.push_str("# EOF\n");
    out
}

/// `registry`'s exposition without its closing `# EOF`, so that another can follow it; empty
/// when it cannot be encoded.
pub(crate) fn without_eof(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    if out.ends_with("# EOF\n") {
        out.truncate(out.len() - "# EOF\n".len());
    }
    out
}
