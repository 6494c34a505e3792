//! The two reads every workspace resource (agents, numbers, providers, webhooks, workflows,
//! calls, deliveries) shares: one row by id, and a page of rows in list order after a position — both confined to
//! the caller's workspace by the query itself, so no resource can forget the scope. Each
//! resource keeps only its table, its columns and how a row becomes its value.

use std::future::Future;

use sqlx::any::AnyRow;

use super::{Store, StoreError, WorkspaceScope};

/// A workspace-scoped table as lists read it.
pub(crate) struct ScopedTable {
    /// The table's name.
    pub table: &'static str,
    /// The columns a row is read with.
    pub columns: &'static str,
    /// An integer column lists sort by before `id` (providers: `priority`); `None` sorts by
    /// `id` alone (UUIDv7, so oldest first).
    pub order: Option<&'static str>,
}

/// A workspace resource read by id and listed in pages the one way: its table, how its rows
/// become values, and where a value stands in list order.
pub(crate) trait ScopedResource: Sized + Send {
    /// The table it is stored in.
    const TABLE: &'static ScopedTable;

    /// The value of one row by itself.
    fn from_row(store: &Store, row: &AnyRow) -> Result<Self, StoreError>;

    /// `rows` read into values: each by itself, unless a resource reads them together
    /// (numbers fetch the further regions of a whole page in one query).
    fn from_rows(
        store: &Store,
        _scope: &WorkspaceScope,
        rows: &[AnyRow],
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send {
        std::future::ready(rows.iter().map(|row| Self::from_row(store, row)).collect())
    }

    /// Where the value stands in list order (what a page's cursor encodes).
    fn position(&self) -> PagePosition;
}

/// Where a page starts: after the row with this sort key (ignored without an `order` column)
/// and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePosition {
    pub key: i64,
    pub id: String,
}

impl PagePosition {
    /// The position of the row with sort key `key` and `id`.
    pub fn of(key: i64, id: &str) -> Self {
        Self {
            key,
            id: id.to_owned(),
        }
    }
}

impl Store {
    /// The row of `table` with `id` in the scoped workspace, or `NotFound` — also when the id
    /// belongs to another workspace.
    pub(crate) async fn scoped_row(
        &self,
        table: &ScopedTable,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<AnyRow, StoreError> {
        scoped_row_in(self.pool(), table, scope, id).await
    }

    /// Up to `limit` rows of `table` in the scoped workspace, in list order after `after`; and
    /// whether more follow. `limit` is at least 1 (the API bounds it).
    pub(crate) async fn scoped_page(
        &self,
        table: &ScopedTable,
        scope: &WorkspaceScope,
        after: Option<&PagePosition>,
        limit: i64,
    ) -> Result<(Vec<AnyRow>, bool), StoreError> {
        let (columns, name) = (table.columns, table.table);
        let (key, id) = after.map_or((i64::MIN, ""), |p| (p.key, p.id.as_str()));
        let sql = match table.order {
            Some(order) => format!(
                "SELECT {columns} FROM {name} WHERE workspace_id = $1 \
                 AND ({order} > $2 OR ({order} = $2 AND id > $3)) \
                 ORDER BY {order}, id LIMIT $4"
            ),
            None => format!(
                "SELECT {columns} FROM {name} WHERE workspace_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3"
            ),
        };
        let query = sqlx::query(&sql).bind(&scope.workspace_id);
        let query = match table.order {
            Some(_) => query.bind(key),
            None => query,
        };
        let mut rows = query
            .bind(id)
            .bind(limit.saturating_add(1))
            .fetch_all(self.read_pool())
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((rows, more))
    }

    /// The `T` with `id` in the scoped workspace, or `NotFound` (also when the id belongs to
    /// another workspace).
    pub(crate) async fn scoped_get<T: ScopedResource>(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<T, StoreError> {
        let row = self.scoped_row(T::TABLE, scope, id).await?;
        let mut one = T::from_rows(self, scope, std::slice::from_ref(&row)).await?;
        one.pop().ok_or(StoreError::NotFound)
    }

    /// A page of the scoped workspace's `T`s in list order after `after`, and whether more
    /// follow.
    pub(crate) async fn scoped_list<T: ScopedResource>(
        &self,
        scope: &WorkspaceScope,
        after: Option<&PagePosition>,
        limit: i64,
    ) -> Result<(Vec<T>, bool), StoreError> {
        let (rows, more) = self.scoped_page(T::TABLE, scope, after, limit).await?;
        Ok((T::from_rows(self, scope, &rows).await?, more))
    }

    /// Every row of `table` in the scoped workspace, in list order (for callers that need them
    /// all at once, not a client's list).
    pub(crate) async fn scoped_rows(
        &self,
        table: &ScopedTable,
        scope: &WorkspaceScope,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let order = table.order.map_or(String::new(), |o| format!("{o}, "));
        let sql = format!(
            "SELECT {} FROM {} WHERE workspace_id = $1 ORDER BY {order}id",
            table.columns, table.table
        );
        Ok(sqlx::query(&sql)
            .bind(&scope.workspace_id)
            .fetch_all(self.pool())
            .await?)
    }
}

/// [`Store::scoped_row`] read through `executor` (a transaction that goes on to change it).
pub(crate) async fn scoped_row_in<'e, E>(
    executor: E,
    table: &ScopedTable,
    scope: &WorkspaceScope,
    id: &str,
) -> Result<AnyRow, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT {} FROM {} WHERE workspace_id = $1 AND id = $2",
        table.columns, table.table
    );
    sqlx::query(&sql)
        .bind(&scope.workspace_id)
        .bind(id)
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound)
}
