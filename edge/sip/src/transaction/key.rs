//! Which transaction a message belongs to (RFC 3261 sections 17.1.3 and 17.2.3).
//!
//! A key is the top Via's branch (which must carry the `z9hG4bK` magic cookie), its sent-by,
//! and the method, with ACK folded into INVITE so that the ACK for a non-2xx response lands in
//! the INVITE server transaction that sent it. A CANCEL has the INVITE's branch but its own
//! method, so it gets a transaction of its own; [`TransactionKey::cancelled_invite`] finds the
//! INVITE it targets. An ACK for a 2xx carries a new branch and so matches no transaction: the
//! owner hands it to the dialog instead.

use rsip::{Method, Request, Response};

use crate::message::{cseq, SipError};
use crate::via::{TopVia, MAGIC_COOKIE};

/// Identifies one transaction, on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    /// The top Via branch, as sent.
    pub branch: String,
    /// The top Via sent-by, lower-cased `host:port`.
    pub sent_by: String,
    /// The transaction's method; never ACK (an ACK maps to its INVITE).
    pub method: Method,
}

// rsip's Method is not Hash; its discriminant is, and is equal exactly when the methods are.
impl std::hash::Hash for TransactionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        self.sent_by.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

impl TransactionKey {
    /// The server transaction an incoming request belongs to.
    pub fn server(request: &Request) -> Result<Self, SipError> {
        Self::from_via(&TopVia::of(&request.headers)?, request.method)
    }

    /// The client transaction an incoming response belongs to: branch plus CSeq method.
    pub fn client(response: &Response) -> Result<Self, SipError> {
        let (_, method) = cseq(&response.headers)?;
        Self::from_via(&TopVia::of(&response.headers)?, method)
    }

    /// The key a client transaction registers for the request it sends.
    pub fn for_outgoing(request: &Request) -> Result<Self, SipError> {
        Self::server(request)
    }

    /// The INVITE server transaction that a CANCEL asks to stop (RFC 3261 section 9.2).
    pub fn cancelled_invite(cancel: &Request) -> Result<Self, SipError> {
        let key = Self::server(cancel)?;
        Ok(Self {
            method: Method::Invite,
            ..key
        })
    }

    fn from_via(via: &TopVia, method: Method) -> Result<Self, SipError> {
        let branch = via.branch().unwrap_or("");
        if !branch.starts_with(MAGIC_COOKIE) {
            return Err(SipError::LegacyBranch(branch.to_owned()));
        }
        let method = match method {
            Method::Ack => Method::Invite,
            other => other,
        };
        Ok(Self {
            branch: branch.to_owned(),
            sent_by: via.sent_by(),
            method,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response_to};

    #[test]
    fn ack_for_non_2xx_matches_its_invite() {
        let invite = request("INVITE", "z9hG4bKinv1");
        let ack = request("ACK", "z9hG4bKinv1");
        assert_eq!(
            TransactionKey::server(&invite),
            TransactionKey::server(&ack)
        );
    }

    #[test]
    fn cancel_is_its_own_transaction_but_finds_the_invite() {
        let invite = request("INVITE", "z9hG4bKinv1");
        let cancel = request("CANCEL", "z9hG4bKinv1");
        let invite_key = TransactionKey::server(&invite).unwrap();
        let cancel_key = TransactionKey::server(&cancel).unwrap();
        assert_ne!(invite_key, cancel_key);
        assert_eq!(cancel_key.method, Method::Cancel);
        assert_eq!(TransactionKey::cancelled_invite(&cancel), Ok(invite_key));
    }

    #[test]
    fn different_branches_or_methods_do_not_match() {
        let a = TransactionKey::server(&request("INVITE", "z9hG4bKa")).unwrap();
        let b = TransactionKey::server(&request("INVITE", "z9hG4bKb")).unwrap();
        let c = TransactionKey::server(&request("BYE", "z9hG4bKa")).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn response_matches_client_transaction_by_branch_and_cseq_method() {
        let invite = request("INVITE", "z9hG4bKout");
        let response = response_to(&invite, 180);
        assert_eq!(
            TransactionKey::client(&response),
            TransactionKey::for_outgoing(&invite)
        );
    }

    #[test]
    fn branch_without_magic_cookie_is_refused() {
        assert_eq!(
            TransactionKey::server(&request("INVITE", "old-style")),
            Err(SipError::LegacyBranch("old-style".to_owned()))
        );
    }
}
