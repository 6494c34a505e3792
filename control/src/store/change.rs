//! The writes every workspace resource shares: a row inserted, changed or deleted by id inside
//! the caller's workspace, in one transaction with its audit entry, retried on conflict, and —
//! for what edges route calls by — a new configuration version announced to them. Each resource
//! keeps only its table, its columns and what its audit entry says; the scope, the audit entry
//! and the version bump cannot be forgotten by one of them.

use futures::future::BoxFuture;
use sqlx::any::AnyRow;

use super::identity::{insert_audit, AuditEntry};
use super::scoped::ScopedResource;
use super::{commit_config_change, retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::now_ms;

/// A transaction on the primary, handed through the steps of one change.
type Transaction = sqlx::Transaction<'static, sqlx::Any>;

/// A value bound into a statement assembled at run time (the engines' common types only).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Text(&'a str),
    /// Text or SQL NULL.
    MaybeText(Option<&'a str>),
    Int(i64),
    /// A whole number or SQL NULL.
    MaybeInt(Option<i64>),
}

/// Who sees a change: edges (the configuration version is bumped and announced, so they fetch
/// a new snapshot), or only the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Edges route calls by it (agents, numbers, workflows, providers).
    Edges,
    /// Only the control plane uses it (webhooks).
    AuditOnly,
}

/// A resource kept as rows of a table of its own (providers, webhooks): its audit type, its
/// table and who hears of a change, for [`Store::insert_resource`] and the writes after it.
pub(crate) struct RowResource {
    /// The resource type in audit entries (`provider`).
    pub resource: &'static str,
    pub table: &'static str,
    pub reach: Reach,
}

impl RowResource {
    /// `actor` changing the row `id` in the scoped workspace.
    pub(crate) fn row<'a>(
        &'a self,
        scope: &'a WorkspaceScope,
        actor: &'a str,
        id: &'a str,
    ) -> RowChange<'a> {
        RowChange {
            change: Change::of(scope, actor, self.resource, id),
            table: self.table,
            reach: self.reach,
        }
    }
}

/// A change to one row of a resource's table: who changes it (the audit entry's [`Change`]),
/// the table, and who hears of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowChange<'a> {
    change: Change<'a>,
    table: &'a str,
    reach: Reach,
}

impl RowChange<'_> {
    /// Writes the audit entry of `<type>.<verb>` with `detail` and commits as the resource's
    /// [`Reach`] says: the new configuration version when edges see it.
    async fn commit(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        verb: &str,
        detail: serde_json::Value,
    ) -> Result<Option<u64>, StoreError> {
        let change = &self.change;
        let action = format!("{}.{verb}", change.resource_type);
        match self.reach {
            Reach::Edges => change.commit_config(tx, &action, detail).await.map(Some),
            Reach::AuditOnly => change.commit(tx, &action, detail).await.map(|()| None),
        }
    }
}

/// How an update's audit entry is made: from `columns` of the row being replaced, read in the
/// update's own transaction, so the entry names each changed field with its old value (see
/// `audit::changed_fields`).
pub(crate) struct Detail<'a> {
    pub columns: &'a str,
    pub make: &'a (dyn Fn(&AnyRow) -> Result<serde_json::Value, StoreError> + Send + Sync),
}

/// Who changes which resource: what every audit entry of a change names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    /// The workspace the resource is in; every statement is confined to it.
    pub scope: &'a WorkspaceScope,
    /// Who to name in the audit entry (`user:<id>`, `api_key:<id>`).
    pub actor: &'a str,
    /// The resource type in audit entries (`agent`); actions are `<type>.created` etc.
    pub resource_type: &'a str,
    pub resource_id: &'a str,
}

impl<'a> Change<'a> {
    /// `actor` changing the `resource_type` with `resource_id` in the scoped workspace.
    pub(crate) fn of(
        scope: &'a WorkspaceScope,
        actor: &'a str,
        resource_type: &'a str,
        resource_id: &'a str,
    ) -> Self {
        Self {
            scope,
            actor,
            resource_type,
            resource_id,
        }
    }

    /// Writes the audit entry and commits: a change edges do not route by.
    pub(crate) async fn commit(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        insert_audit(&mut *tx, self.scope, self.entry_for(action, detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the audit entry, bumps the configuration version and commits; the version, for
    /// [`Store::notify_config_changed`] once the retry loop is done.
    pub(crate) async fn commit_config(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<u64, StoreError> {
        commit_config_change(tx, self.scope, self.entry_for(action, detail)).await
    }

    /// The audit entry of this change doing `action` with `detail`.
    fn entry_for<'b>(&'b self, action: &'b str, detail: serde_json::Value) -> AuditEntry<'b> {
        AuditEntry {
            actor: self.actor,
            action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            detail,
        }
    }
}

/// `query` with `cell` bound as its next parameter.
fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    cell: Cell<'q>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match cell {
        Cell::Text(text) => query.bind(text),
        Cell::MaybeText(text) => query.bind(text),
        Cell::Int(n) => query.bind(n),
        Cell::MaybeInt(n) => query.bind(n),
    }
}

/// `assignments` (each a SQL assignment with one `?` for its cell) numbered `$1`, `$2`, … in
/// order, joined for a `SET` list: the cells are then bound in the same order.
fn numbered(assignments: &[(&str, Cell<'_>)]) -> String {
    assignments
        .iter()
        .enumerate()
        .map(|(i, (assignment, _))| assignment.replacen('?', &format!("${}", i + 1), 1))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Inserts the changed resource's row into its table: its id, the scope's workspace,
    /// `cells` and both timestamps now; audited as `<type>.created` with `detail`. The stored
    /// value, read back.
    pub(crate) async fn insert_resource<T: ScopedResource>(
        &self,
        row: RowChange<'_>,
        cells: &[(&str, Cell<'_>)],
        detail: serde_json::Value,
    ) -> Result<T, StoreError> {
        let (change, table) = (row.change, row.table);
        let columns: Vec<&str> = cells.iter().map(|(column, _)| *column).collect();
        let values: Vec<String> = (0..cells.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "INSERT INTO {table} (id, workspace_id, created_at_ms, updated_at_ms, {}) \
             VALUES ($1, $2, $3, $3, {})",
            columns.join(", "),
            values.join(", ")
        );
        self.reaching(|| async {
            let mut tx = self.pool().begin().await?;
            let query = sqlx::query(&sql)
                .bind(change.resource_id)
                .bind(&change.scope.workspace_id)
                .bind(now_ms());
            let query = cells.iter().fold(query, |q, (_, cell)| bind(q, *cell));
            query.execute(&mut *tx).await?;
            row.commit(tx, "created", detail.clone()).await
        })
        .await?;
        self.scoped_get(change.scope, change.resource_id).await
    }

    /// Sets `assignments` (each a SQL assignment with one `?` for its cell, such as
    /// `name = ?` or `secret = COALESCE(?, secret)`) and `updated_at_ms` on the changed
    /// resource's row of its table; audited as `<type>.updated` with what `detail` makes of
    /// the row it replaces. `NotFound` when the workspace has no such row. The stored value,
    /// read back.
    pub(crate) async fn update_resource<T: ScopedResource>(
        &self,
        row: RowChange<'_>,
        assignments: &[(&str, Cell<'_>)],
        detail: &Detail<'_>,
    ) -> Result<T, StoreError> {
        let (change, table) = (row.change, row.table);
        let n = assignments.len();
        let sql = format!(
            "UPDATE {table} SET {}, updated_at_ms = ${} WHERE workspace_id = ${} AND id = ${}",
            numbered(assignments),
            n + 1,
            n + 2,
            n + 3
        );
        self.reaching(|| async {
            let mut tx = self.pool().begin().await?;
            let before = sqlx::query(&format!(
                "SELECT {} FROM {table} WHERE workspace_id = $1 AND id = $2",
                detail.columns
            ))
            .bind(&change.scope.workspace_id)
            .bind(change.resource_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            let detail = (detail.make)(&before)?;
            let query = sqlx::query(&sql);
            let query = assignments
                .iter()
                .fold(query, |q, (_, cell)| bind(q, *cell));
            let updated = query
                .bind(now_ms())
                .bind(&change.scope.workspace_id)
                .bind(change.resource_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            row.commit(tx, "updated", detail).await
        })
        .await?;
        self.scoped_get(change.scope, change.resource_id).await
    }

    /// Sets `assignments` (as for [`Store::update_resource`]) and `updated_at_ms` on the
    /// scoped workspace's own row, audited as `action` with `detail` in the same transaction.
    /// `NotFound` when the workspace is gone.
    pub(crate) async fn update_workspace_row(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        assignments: &[(&str, Cell<'_>)],
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let n = assignments.len();
        let sql = format!(
            "UPDATE workspaces SET {}, updated_at_ms = ${} WHERE id = ${}",
            numbered(assignments),
            n + 1,
            n + 2
        );
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let query = assignments
                .iter()
                .fold(sqlx::query(&sql), |q, (_, cell)| bind(q, *cell));
            let updated = query
                .bind(now_ms())
                .bind(&scope.workspace_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            Change::of(scope, actor, "workspace", &scope.workspace_id)
                .commit(tx, action, detail.clone())
                .await
        })
        .await
    }

    /// Deletes the changed resource's row of its table and, first, its rows in each of
    /// `dependents` (table, column naming the resource: not left to a foreign key's cascade,
    /// which SQLite only honours when enabled); audited as `<type>.deleted`.
    /// `NotFound` when the workspace has no such row.
    pub(crate) async fn delete_resource(
        &self,
        row: RowChange<'_>,
        dependents: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let (change, table) = (row.change, row.table);
        self.reaching(|| async {
            let mut tx = self.pool().begin().await?;
            for (dependent, column) in dependents {
                delete_scoped(&mut tx, change.scope, dependent, column, change.resource_id).await?;
            }
            let deleted =
                delete_scoped(&mut tx, change.scope, table, "id", change.resource_id).await?;
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            row.commit(tx, "deleted", serde_json::json!({})).await
        })
        .await
    }

    /// Deletes a resource edges route by: `remove` deletes its rows inside the transaction (or
    /// refuses, with the error that says why), then the change is audited as
    /// `<type>.deleted`, the configuration version bumped and edges told, all retried together.
    pub(crate) async fn delete_routed<'a>(
        &self,
        change: Change<'a>,
        remove: impl Fn(Transaction) -> BoxFuture<'a, Result<Transaction, StoreError>>,
    ) -> Result<(), StoreError> {
        let action = format!("{}.deleted", change.resource_type);
        self.config_change(|| async {
            let tx = remove(self.pool().begin().await?).await?;
            change
                .commit_config(tx, &action, serde_json::json!({}))
                .await
        })
        .await
    }

    /// [`retry`]s `attempt` (a transaction that ends in [`Change::commit_config`]), then tells
    /// edges of the configuration version it committed.
    pub(crate) async fn config_change<F, Fut>(&self, attempt: F) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<u64, StoreError>>,
    {
        let version = retry(&self.health, attempt).await?;
        self.notify_config_changed(version);
        Ok(())
    }

    /// [`retry`]s `attempt` (a transaction that ends in [`RowChange::commit`]), then tells
    /// edges of the configuration version it committed, when it reached them.
    async fn reaching<F, Fut>(&self, attempt: F) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<u64>, StoreError>>,
    {
        if let Some(version) = retry(&self.health, attempt).await? {
            self.notify_config_changed(version);
        }
        Ok(())
    }
}

/// A table whose rows are a named JSON document (agents, workflows), for the writes they share:
/// the name in a column of its own for listing, the document in `column`; edges route by them.
pub(crate) struct NamedDocument {
    /// Its audit type and table (edges route by every named document).
    pub kind: RowResource,
    /// The column holding the document.
    pub column: &'static str,
}

/// The document a [`Store::replace_document`] stores, and how its audit entry's `changes` are
/// made from the document stored before (see `audit::changed_fields`).
pub(crate) struct NewDocument<'a> {
    /// The name column's new value.
    pub name: &'a str,
    /// The document, validated and serialized.
    pub text: &'a str,
    /// The audit detail, from the text of the document it replaces.
    pub changes: &'a (dyn Fn(&str) -> Result<serde_json::Value, StoreError> + Send + Sync),
}

impl Store {
    /// Stores a new named document `text` (already validated and serialized) with `id`; the
    /// stored value.
    pub(crate) async fn insert_document<T: ScopedResource>(
        &self,
        doc: &NamedDocument,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        name: &str,
        text: &str,
    ) -> Result<T, StoreError> {
        let cells = [("name", Cell::Text(name)), (doc.column, Cell::Text(text))];
        let detail = serde_json::json!({ "name": name });
        self.insert_resource(doc.kind.row(scope, actor, id), &cells, detail)
            .await
    }

    /// Replaces the named document `id` of the scoped workspace; `NotFound` when it has none.
    /// The audit entry's `changes` are what `new.changes` makes of the document stored before,
    /// read in the same transaction. The stored value.
    pub(crate) async fn replace_document<T: ScopedResource>(
        &self,
        doc: &NamedDocument,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        new: &NewDocument<'_>,
    ) -> Result<T, StoreError> {
        let set = format!("{} = ?", doc.column);
        let cells = [
            ("name = ?", Cell::Text(new.name)),
            (set.as_str(), Cell::Text(new.text)),
        ];
        let make = |before: &AnyRow| {
            let before: String = sqlx::Row::try_get(before, 0)?;
            let mut detail = (new.changes)(&before)?;
            if let Some(fields) = detail.as_object_mut() {
                fields.insert("name".into(), serde_json::json!(new.name));
            }
            Ok(detail)
        };
        let detail = Detail {
            columns: doc.column,
            make: &make,
        };
        self.update_resource(doc.kind.row(scope, actor, id), &cells, &detail)
            .await
    }
}

/// Deletes the rows of `table` in the scoped workspace whose `column` is `value`; how many.
pub(crate) async fn delete_scoped(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    scope: &WorkspaceScope,
    table: &str,
    column: &str,
    value: &str,
) -> Result<u64, StoreError> {
    let sql = format!("DELETE FROM {table} WHERE workspace_id = $1 AND {column} = $2");
    Ok(sqlx::query(&sql)
        .bind(&scope.workspace_id)
        .bind(value)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}
