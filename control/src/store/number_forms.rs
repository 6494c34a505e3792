//! Keeping phone numbers unique by their normal form ([`normalize_dialable`]), including the
//! rows written before numbers were normalised on write.
//!
//! Once per database, at start-up after the SQL migrations, every stored number is rewritten
//! into its normal form. Where two rows share a normal form (`15551234567` in one workspace,
//! `+15551234567` in another) or a row is no number at all, the rows are marked
//! `normal_form_conflict` instead, reported in the log, and left out of every edge snapshot:
//! choosing one would hand one workspace's callers to the other. A marked row is released (put
//! in normal form and routed again) as soon as it is the only claim left on its number, after
//! the other one is changed or deleted. New writes arrive normalised; they are also checked
//! against the marked rows, which the unique index cannot see (their text is not normal).

use std::collections::BTreeMap;

use sqlx::{AnyPool, Row};

use super::columns::from_columns;
use super::StoreError;
use freya_shared::ids::now_ms;
use freya_shared::model::normalize_dialable;

/// The name under which the normalisation is recorded in `data_migrations`.
const MIGRATION: &str = "phone_numbers_normal_form";

/// A stored number as the normalisation reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredNumber {
    pub id: String,
    pub workspace_id: String,
    pub number: String,
}

/// What to do with a set of stored numbers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Rows that are the only claim on their normal form: (id, normal form).
    pub rewrite: Vec<(String, String)>,
    /// Rows sharing one normal form, by that form: none of them is routed.
    pub conflicts: BTreeMap<String, Vec<StoredNumber>>,
    /// Rows whose number has no normal form any more.
    pub not_numbers: Vec<StoredNumber>,
}

/// Groups `rows` by normal form: singles are rewritten, shared forms and non-numbers marked.
pub(super) fn plan(rows: Vec<StoredNumber>) -> Plan {
    let mut by_form: BTreeMap<String, Vec<StoredNumber>> = BTreeMap::new();
    let mut plan = Plan::default();
    for row in rows {
        match normalize_dialable(&row.number) {
            Ok(form) => by_form.entry(form).or_default().push(row),
            Err(_) => plan.not_numbers.push(row),
        }
    }
    for (form, mut claims) in by_form {
        if claims.len() == 1 {
            let only = claims.remove(0);
            plan.rewrite.push((only.id, form));
        } else {
            plan.conflicts.insert(form, claims);
        }
    }
    plan
}

/// Normalises every stored number once per database (see the module comment); later calls do
/// nothing. Runs inside the migration lock, so one process does it.
pub(super) async fn normalise_stored_numbers(pool: &AnyPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let done: Option<String> =
        sqlx::query_scalar("SELECT name FROM data_migrations WHERE name = $1")
            .bind(MIGRATION)
            .fetch_optional(&mut *tx)
            .await?;
    if done.is_some() {
        return Ok(());
    }
    let rows = sqlx::query("SELECT id, workspace_id, number FROM phone_numbers ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let stored = stored_numbers(&rows)?;
    let plan = plan(stored);
    // Marks first, so that no rewrite can collide with a row that keeps its old text.
    for (form, claims) in &plan.conflicts {
        let rows: Vec<String> = claims
            .iter()
            .map(|c| {
                format!(
                    "{} (workspace {}, written {:?})",
                    c.id, c.workspace_id, c.number
                )
            })
            .collect();
        tracing::warn!(
            number = %form,
            rows = %rows.join(", "),
            "phone numbers claim the same number; none of them is answered until all but one \
             are changed or deleted"
        );
        for claim in claims {
            mark(&mut tx, &claim.id).await?;
        }
    }
    for row in &plan.not_numbers {
        tracing::warn!(
            id = %row.id, workspace = %row.workspace_id, number = %row.number,
            "a stored phone number is not a number; it is not answered until it is changed"
        );
        mark(&mut tx, &row.id).await?;
    }
    for (id, form) in &plan.rewrite {
        sqlx::query("UPDATE phone_numbers SET number = $1 WHERE id = $2 AND number <> $1")
            .bind(form)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO data_migrations (name, applied_at_ms) VALUES ($1, $2)")
        .bind(MIGRATION)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn mark(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE phone_numbers SET normal_form_conflict = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The marked rows, which keep the text they were written with.
async fn marked(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<Vec<StoredNumber>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, workspace_id, number FROM phone_numbers WHERE normal_form_conflict = 1",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(stored_numbers(&rows)?)
}

/// The rows of a `SELECT id, workspace_id, number FROM phone_numbers`.
fn stored_numbers(rows: &[sqlx::any::AnyRow]) -> Result<Vec<StoredNumber>, sqlx::Error> {
    rows.iter()
        .map(|row| Ok(from_columns!(row => StoredNumber { id, workspace_id, number })))
        .collect()
}

/// Refuses `number` (normalised) when a marked row other than `except_id` claims it too; the
/// unique index sees only rows in normal form.
pub(super) async fn ensure_unclaimed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    number: &str,
    except_id: Option<&str>,
) -> Result<(), StoreError> {
    let claimed = marked(tx).await?.into_iter().any(|row| {
        Some(row.id.as_str()) != except_id
            && normalize_dialable(&row.number).is_ok_and(|form| form == number)
    });
    if claimed {
        return Err(StoreError::Conflict(format!(
            "number {number} is already routed"
        )));
    }
    Ok(())
}

/// Puts back into normal form, and into routing, every marked row that has become the only
/// claim on its number (after another was changed or deleted in this transaction).
pub(super) async fn release_settled(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    let marked = marked(tx).await?;
    if marked.is_empty() {
        return Ok(());
    }
    let plan = plan(marked);
    for (id, form) in plan.rewrite {
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT id FROM phone_numbers WHERE number = $1 AND normal_form_conflict = 0",
        )
        .bind(&form)
        .fetch_optional(&mut **tx)
        .await?;
        if taken.is_some() {
            continue;
        }
        sqlx::query("UPDATE phone_numbers SET number = $1, normal_form_conflict = 0 WHERE id = $2")
            .bind(&form)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        tracing::info!(id = %id, number = %form, "a phone number claimed twice is routed again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, workspace: &str, number: &str) -> StoredNumber {
        StoredNumber {
            id: id.into(),
            workspace_id: workspace.into(),
            number: number.into(),
        }
    }

    #[test]
    fn two_spellings_of_one_number_are_both_marked_and_neither_rewritten() {
        let plan = plan(vec![
            row("1", "a", "+15551234567"),
            row("2", "b", "15551234567"),
            row("3", "b", "1 555 000 1111"),
            row("4", "c", "demo"),
            row("5", "c", "020 7946 0000"),
        ]);
        assert_eq!(
            plan.rewrite,
            [
                ("3".to_string(), "+15550001111".to_string()),
                ("4".to_string(), "demo".to_string())
            ]
        );
        let shared: Vec<&str> = plan.conflicts["+15551234567"]
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(shared, ["1", "2"]);
        assert_eq!(plan.not_numbers, [row("5", "c", "020 7946 0000")]);
    }
}
