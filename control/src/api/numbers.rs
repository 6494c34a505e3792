//! `/v1/phone-numbers`: create, list, read and patch the numbers of the caller's workspace, the
//! agent or workflow each routes to, and the regions that answer it (home `region`, further
//! `regions`).

use serde::Serialize;

use super::auth::Caller;
use super::crud::{checked, crud_routes, merged, store_writes, Resource};
use super::openapi::PhoneNumberSpecDoc;
use super::problem::Problem;
use super::{AppState, List};
use crate::store::PhoneNumber;
use freya_shared::ids::rfc3339;
use freya_shared::model::PhoneNumberSpec;

/// A phone number as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PhoneNumberView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::PhoneNumberSpecDoc)]
    spec: PhoneNumberSpec,
    /// Present when another number written before numbers were normalised has the same normal
    /// form: no edge answers either until one is changed or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<PhoneNumber> for PhoneNumberView {
    fn from(n: PhoneNumber) -> Self {
        Self {
            id: n.id,
            workspace_id: n.workspace_id,
            conflict: n.claimed_twice.then(|| {
                "another number has the same normal form; neither is answered until one is \
                 changed or deleted"
                    .to_owned()
            }),
            spec: n.spec,
            created_at: rfc3339(n.created_at_ms),
            updated_at: rfc3339(n.updated_at_ms),
        }
    }
}

/// Phone numbers as a [`Resource`]: stored in normal form (one spelling per number, as edges
/// route it), shown with their `conflict`.
pub(super) struct Numbers;

impl Resource for Numbers {
    type Spec = PhoneNumberSpec;
    type Stored = PhoneNumber;
    type View = PhoneNumberView;
    type Change = PhoneNumberSpec;

    async fn validated(
        _: &AppState,
        _: &Caller,
        spec: PhoneNumberSpec,
    ) -> Result<PhoneNumberSpec, Problem> {
        let errors = spec.validate();
        Ok(checked(spec, errors)?.normalized())
    }

    async fn patched(
        state: &AppState,
        caller: &Caller,
        current: PhoneNumber,
        patch: serde_json::Value,
    ) -> Result<PhoneNumberSpec, Problem> {
        Self::validated(state, caller, merged(&current.spec, patch)?).await
    }

    store_writes!(PhoneNumberSpec => PhoneNumber, create_number, update_number, delete_number);
}

crud_routes! {
    resource: Numbers,
    view: PhoneNumberView,
    spec_doc: PhoneNumberSpecDoc,
    path: "/v1/phone-numbers",
    item_path: "/v1/phone-numbers/{id}",
    tag: "phone-numbers",
    create: "Create a phone number (editor)",
    list: "The workspace's phone numbers",
    listed: "A page of phone numbers",
    get: "One phone number",
    got: "The phone number",
    id: "The phone number's id",
    patch: "Change a phone number with a JSON merge patch (editor)",
    patch_body: "Any subset of the fields (RFC 7396 merge patch; null removes an optional field)",
    delete: "Delete a phone number (editor)",
}
