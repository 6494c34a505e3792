//! The one create / list / get / merge-patch / delete path every workspace resource (agents,
//! phone numbers, providers, webhooks, workflows) goes through. A resource says what it is —
//! its body, its stored value, its view, how a body is checked and a patch is merged, which
//! store calls read and write it — in a [`Resource`] impl; the handlers here do the rest the
//! same way for all: strict bodies, 404 for ids that name nothing, 422 problem+json for
//! invalid specs, cursor pages. Roles are not checked here: the route table declares the least
//! role of each route and [`super::auth::Caller`] enforces it. Audit entries and the edges'
//! config notifications are written by the store calls, in the same transaction as the change.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject, JsonValue};
use super::problem::Problem;
use super::query::{bad_parameter, decode_cursor, encode_cursor, StrictQuery};
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{PagePosition, ScopedResource, StoreError};

/// A page size when the query gives none.
const DEFAULT_PAGE: u32 = 100;
/// The largest page a list serves.
const MAX_PAGE: u32 = 500;

/// The paging parameters of a resource list: `?limit=` (1 to 500, 100 when absent) and the
/// opaque `?cursor=` of the previous page's `next_cursor`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// How many items at most (1 to 500; 100 when absent).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// What the generic handlers need to know about one resource.
pub(crate) trait Resource: Send + Sync + 'static {
    /// The body of a create (after [`Resource::parsed`]), checked by [`Resource::validated`].
    type Spec: Send;
    /// The value the store keeps and returns (read and listed the one way every workspace
    /// resource is).
    type Stored: ScopedResource;
    /// The value the API shows.
    type View: Serialize + From<Self::Stored>;
    /// The view of a stored item (what a provider's `health` needs comes from `state`).
    fn view(_state: &AppState, stored: Self::Stored) -> Self::View {
        stored.into()
    }

    /// What the store's update takes (the spec, and for providers what to do with the secret).
    type Change: Send;

    /// A create body parsed into a spec; strict by default (every unknown field is a 422).
    fn parsed(body: serde_json::Value) -> Result<Self::Spec, Problem>
    where
        Self::Spec: DeserializeOwned,
    {
        strict_from_value(body)
    }

    /// `spec` checked (every problem as one 422) and brought into the form it is stored in.
    fn validated(
        state: &AppState,
        caller: &Caller,
        spec: Self::Spec,
    ) -> impl Future<Output = Result<Self::Spec, Problem>> + Send;

    /// The change a merge `patch` makes to `current`, checked like a create.
    fn patched(
        state: &AppState,
        caller: &Caller,
        current: Self::Stored,
        patch: serde_json::Value,
    ) -> impl Future<Output = Result<Self::Change, Problem>> + Send;

    /// One stored item of the caller's workspace.
    fn fetch(
        state: &AppState,
        caller: &Caller,
        id: &str,
    ) -> impl Future<Output = Result<Self::Stored, StoreError>> + Send {
        state.store.scoped_get(&caller.scope, id)
    }

    /// A page after `after`, and whether more follow.
    fn page(
        state: &AppState,
        caller: &Caller,
        after: Option<&PagePosition>,
        limit: i64,
    ) -> impl Future<Output = Result<(Vec<Self::Stored>, bool), StoreError>> + Send {
        state.store.scoped_list(&caller.scope, after, limit)
    }

    /// Stores a new item (audited, edges told).
    fn insert(
        state: &AppState,
        caller: &Caller,
        spec: Self::Spec,
    ) -> impl Future<Output = Result<Self::Stored, StoreError>> + Send;

    /// Applies a change (audited, edges told).
    fn update(
        state: &AppState,
        caller: &Caller,
        id: &str,
        change: Self::Change,
    ) -> impl Future<Output = Result<Self::Stored, StoreError>> + Send;

    /// Deletes an item (audited, edges told).
    fn remove(
        state: &AppState,
        caller: &Caller,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `current` with a merge `patch` applied, parsed strictly back into its type.
pub(crate) fn merged<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: serde_json::Value,
) -> Result<T, Problem> {
    let mut document =
        serde_json::to_value(current).map_err(|e| Problem::internal(e.to_string()))?;
    merge_patch(&mut document, patch);
    strict_from_value(document)
}

/// A spec's own field checks as one 422.
pub(crate) fn checked<T>(
    spec: T,
    errors: Vec<freya_shared::model::FieldError>,
) -> Result<T, Problem> {
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

/// `POST /v1/<resource>`: 201 with the stored item.
pub(crate) async fn create<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    JsonValue(body): JsonValue,
) -> Result<(StatusCode, Json<R::View>), Problem>
where
    R::Spec: DeserializeOwned,
{
    let spec = R::validated(&state, &caller, R::parsed(body)?).await?;
    let stored = R::insert(&state, &caller, spec).await?;
    Ok((StatusCode::CREATED, Json(R::view(&state, stored))))
}

/// `GET /v1/<resource>`: a page in list order, with `next_cursor` when more follow.
pub(crate) async fn list<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> Result<Json<List<R::View>>, Problem> {
    let limit = match q.limit {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(bad_parameter("limit", "must be between 1 and 500")),
    };
    let after = q
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .map(|(key, id)| PagePosition { key, id });
    let (page, more) = R::page(&state, &caller, after.as_ref(), i64::from(limit)).await?;
    let next_cursor = more
        .then(|| page.last().map(ScopedResource::position))
        .flatten()
        .map(|p| encode_cursor(p.key, &p.id));
    Ok(Json(List {
        data: page.into_iter().map(|s| R::view(&state, s)).collect(),
        next_cursor,
    }))
}

/// `GET /v1/<resource>/{id}`.
pub(crate) async fn get<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<Json<R::View>, Problem> {
    let stored = R::fetch(&state, &caller, &id).await?;
    Ok(Json(R::view(&state, stored)))
}

/// `PATCH /v1/<resource>/{id}`: an RFC 7396 merge patch of the stored item.
pub(crate) async fn patch<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
    JsonObject(patch): JsonObject,
) -> Result<Json<R::View>, Problem> {
    let current = R::fetch(&state, &caller, &id).await?;
    let change = R::patched(&state, &caller, current, patch).await?;
    let stored = R::update(&state, &caller, &id, change).await?;
    Ok(Json(R::view(&state, stored)))
}

/// `DELETE /v1/<resource>/{id}`: 204.
pub(crate) async fn delete<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<StatusCode, Problem> {
    R::remove(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The documented handlers of one resource: thin wrappers around the generic ones above, each
/// with its `#[utoipa::path]` (which cannot sit on a generic fn), so the OpenAPI document says
/// per resource what the one path does. The calling module has `List` in scope (utoipa names the
/// list's schema after the type as written).
macro_rules! crud_routes {
    (
        resource: $resource:ty,
        view: $view:ty,
        spec_doc: $spec_doc:ty,
        path: $path:tt,
        item_path: $item_path:tt,
        tag: $tag:tt,
        create: $create:tt,
        list: $list:tt,
        listed: $listed:tt,
        get: $get:tt,
        got: $got:tt,
        id: $id:tt,
        patch: $patch:tt,
        patch_body: $patch_body:tt,
        delete: $delete:tt,
    ) => {
        #[utoipa::path(
                            post,
                            path = $path,
                            tag = $tag,
                            summary = $create,
                            request_body = $spec_doc,
                            responses((status = 201, description = "Created", body = $view))
                        )]
        pub(super) async fn create(
            state: axum::extract::State<$crate::api::AppState>,
            caller: $crate::api::Caller,
            body: $crate::api::json::JsonValue,
        ) -> Result<(axum::http::StatusCode, axum::Json<$view>), $crate::api::problem::Problem> {
            $crate::api::crud::create::<$resource>(state, caller, body).await
        }

        #[utoipa::path(
                            get,
                            path = $path,
                            tag = $tag,
                            summary = $list,
                            params($crate::api::crud::PageQuery),
                            responses((status = 200, description = $listed, body = List<$view>))
                        )]
        pub(super) async fn list(
            state: axum::extract::State<$crate::api::AppState>,
            caller: $crate::api::Caller,
            query: $crate::api::query::StrictQuery<$crate::api::crud::PageQuery>,
        ) -> Result<axum::Json<$crate::api::List<$view>>, $crate::api::problem::Problem> {
            $crate::api::crud::list::<$resource>(state, caller, query).await
        }

        #[utoipa::path(
                            get,
                            path = $item_path,
                            tag = $tag,
                            summary = $get,
                            params(("id" = String, Path, description = $id)),
                            responses((status = 200, description = $got, body = $view))
                        )]
        pub(super) async fn get(
            state: axum::extract::State<$crate::api::AppState>,
            caller: $crate::api::Caller,
            id: $crate::api::resource_id::ResourceId,
        ) -> Result<axum::Json<$view>, $crate::api::problem::Problem> {
            $crate::api::crud::get::<$resource>(state, caller, id).await
        }

        #[utoipa::path(
                            patch,
                            path = $item_path,
                            tag = $tag,
                            summary = $patch,
                            params(("id" = String, Path, description = $id)),
                            request_body(content = $spec_doc, description = $patch_body),
                            responses((status = 200, description = "Changed", body = $view))
                        )]
        pub(super) async fn patch(
            state: axum::extract::State<$crate::api::AppState>,
            caller: $crate::api::Caller,
            id: $crate::api::resource_id::ResourceId,
            patch: $crate::api::json::JsonObject,
        ) -> Result<axum::Json<$view>, $crate::api::problem::Problem> {
            $crate::api::crud::patch::<$resource>(state, caller, id, patch).await
        }

        #[utoipa::path(
                            delete,
                            path = $item_path,
                            tag = $tag,
                            summary = $delete,
                            params(("id" = String, Path, description = $id)),
                            responses((status = 204, description = "Deleted"))
                        )]
        pub(super) async fn delete(
            state: axum::extract::State<$crate::api::AppState>,
            caller: $crate::api::Caller,
            id: $crate::api::resource_id::ResourceId,
        ) -> Result<axum::http::StatusCode, $crate::api::problem::Problem> {
            $crate::api::crud::delete::<$resource>(state, caller, id).await
        }
    };
}
pub(crate) use crud_routes;

/// A resource's [`Resource::insert`], [`Resource::update`] and [`Resource::remove`] when each
/// only hands the caller's scope and actor to the store's create, update or delete of that
/// resource (the change as given, or first made into what the store takes by `$into`). Written
/// once here so that every resource reaches its store calls the same way.
macro_rules! store_writes {
    (insert: $spec:ty => $stored:ty, $create:ident $(, $into:path)?) => {
        async fn insert(
            state: &$crate::api::AppState,
            caller: &$crate::api::Caller,
            spec: $spec,
        ) -> Result<$stored, $crate::store::StoreError> {
            $(let spec = $into(spec);)?
            state
                .store
                .$create(&caller.scope, &caller.actor, &spec)
                .await
        }
    };
    (update: $change:ty => $stored:ty, $update:ident $(, $into:path)?) => {
        async fn update(
            state: &$crate::api::AppState,
            caller: &$crate::api::Caller,
            id: &str,
            change: $change,
        ) -> Result<$stored, $crate::store::StoreError> {
            $(let change = $into(change);)?
            state
                .store
                .$update(&caller.scope, &caller.actor, id, &change)
                .await
        }
    };
    (remove: $delete:ident) => {
        async fn remove(
            state: &$crate::api::AppState,
            caller: &$crate::api::Caller,
            id: &str,
        ) -> Result<(), $crate::store::StoreError> {
            state
                .store
                .$delete(&caller.scope, &caller.actor, id)
                .await
        }
    };
    ($spec:ty => $stored:ty, $create:ident, $update:ident, $delete:ident $(, $into:path)?) => {
        $crate::api::crud::store_writes!(insert: $spec => $stored, $create $(, $into)?);
        $crate::api::crud::store_writes!(update: $spec => $stored, $update $(, $into)?);
        $crate::api::crud::store_writes!(remove: $delete);
    };
}
pub(crate) use store_writes;
