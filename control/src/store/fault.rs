//! Storage faults: which database errors mean "the store could not take this write" (a full disk,
//! a failing device, a database that is gone), told apart in this one place from the errors a
//! handler answers itself (not found, conflict). A fault is answered 507 or 503 — never a 2xx —
//! and marks the store's [`StorageHealth`] unhealthy, which `/readyz` reports until a probe write
//! ([`Store::probe_write`](super::Store::probe_write)) commits again: recovery needs no restart.

use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::StoreError;

/// A failure of the storage itself, by what the client should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StorageFault {
    /// The database could not store the change: its disk is full or its device failed a write
    /// (SQLite `SQLITE_FULL`, `SQLITE_IOERR*`; PostgreSQL class 53 "insufficient resources",
    /// `58030 io_error`). HTTP 507.
    #[error("the database could not store the change (disk full or I/O error)")]
    InsufficientStorage,
    /// The database cannot be reached or used right now (a lost connection, an exhausted pool,
    /// a read-only or unopenable file, a server shutting down). HTTP 503.
    #[error("the database is unavailable")]
    Unavailable,
}

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_NOTADB: i32 = 26;

impl StorageFault {
    /// The fault behind `error`, if it is one; `None` for errors about the request or the data
    /// (constraint violations, a missing row, a serialization conflict left after retries).
    pub fn of(error: &sqlx::Error) -> Option<Self> {
        match error {
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    Self::from_sqlite_code(code.parse().ok()?)
                } else {
                    Self::from_sqlstate(&code)
                }
            }
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                Some(Self::InsufficientStorage)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Self::Unavailable),
            _ => None,
        }
    }

    /// The fault an SQLite result code (primary or extended) names.
    pub fn from_sqlite_code(code: i32) -> Option<Self> {
        match code & 0xff {
            SQLITE_FULL | SQLITE_IOERR => Some(Self::InsufficientStorage),
            SQLITE_NOMEM | SQLITE_READONLY | SQLITE_CORRUPT | SQLITE_CANTOPEN | SQLITE_NOTADB => {
                Some(Self::Unavailable)
            }
            _ => None,
        }
    }

    /// The fault a PostgreSQL (or CockroachDB) SQLSTATE names.
    pub fn from_sqlstate(state: &str) -> Option<Self> {
        match state {
            // too_many_connections: the server is busy, not out of room.
            "53300" => Some(Self::Unavailable),
            // Class 53, insufficient resources: 53100 disk_full, 53000, 53200 out_of_memory,
            // 53400 configuration_limit_exceeded; and 58030 io_error.
            s if s.starts_with("53") => Some(Self::InsufficientStorage),
            "58030" => Some(Self::InsufficientStorage),
            // Class 08 connection exception, 57P01-57P03 shutting down or not accepting
            // connections yet, 58000 system_error, 58P01/58P02 a file the server needs is gone.
            s if s.starts_with("08") || s.starts_with("57P") || s.starts_with("58") => {
                Some(Self::Unavailable)
            }
            _ => None,
        }
    }
}

impl StoreError {
    /// The storage fault behind this error, if it is one (see [`StorageFault::of`]).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            StoreError::Database(e) => StorageFault::of(e),
            StoreError::File { .. } => Some(StorageFault::Unavailable),
            _ => None,
        }
    }
}

/// The last storage fault seen and not yet cleared by a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    pub fault: StorageFault,
    /// The database's own message, for operators (never sent to API clients).
    pub detail: String,
    /// When it was seen (Unix ms).
    pub at_ms: i64,
}

/// Whether the store is taking writes, shared by every clone of a store: set by any request
/// or task that meets a [`StorageFault`], cleared by the next successful probe write.
#[derive(Debug, Default, Clone)]
pub struct StorageHealth {
    last_fault: Arc<Mutex<Option<FaultReport>>>,
    /// `freya_control_database_retries_total`: transactions run again after a conflict.
    pub retries: prometheus_client::metrics::counter::Counter,
    /// `freya_control_database_errors_total`: transactions that failed in the database for
    /// good (after their retries), and failed liveness probes.
    pub errors: prometheus_client::metrics::counter::Counter,
}

impl StorageHealth {
    /// Notes `error` if it is a storage fault (and logs it once per fault); returns the fault.
    pub fn record(&self, error: &StoreError) -> Option<StorageFault> {
        let fault = error.storage_fault()?;
        self.record_fault(fault, error.to_string());
        Some(fault)
    }

    /// Marks the store unhealthy with `fault`.
    pub fn record_fault(&self, fault: StorageFault, detail: String) {
        let mut last = self.lock();
        if last.is_none() {
            tracing::error!(%fault, %detail, "storage fault: the store is unhealthy until a write succeeds");
        }
        *last = Some(FaultReport {
            fault,
            detail,
            at_ms: freya_shared::ids::now_ms(),
        });
    }

    /// Marks the store healthy again: a write has committed.
    pub fn clear(&self) {
        if self.lock().take().is_some() {
            tracing::info!("storage recovered: a write committed again");
        }
    }

    /// The fault that makes the store unhealthy now, if any.
    pub fn current(&self) -> Option<FaultReport> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<FaultReport>> {
        // A panic while holding this lock cannot leave the report half-written.
        self.last_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_full_and_io_errors_are_insufficient_storage() {
        for code in [
            13, 10, 778,  /* IOERR_WRITE */
            1034, /* IOERR_FSYNC */
        ] {
            assert_eq!(
                StorageFault::from_sqlite_code(code),
                Some(StorageFault::InsufficientStorage),
                "code {code}"
            );
        }
    }

    #[test]
    fn sqlite_unusable_files_are_unavailable_and_request_errors_are_not_faults() {
        assert_eq!(
            StorageFault::from_sqlite_code(8),
            Some(StorageFault::Unavailable)
        );
        assert_eq!(
            StorageFault::from_sqlite_code(14),
            Some(StorageFault::Unavailable)
        );
        // UNIQUE constraint (2067), BUSY (5) left after retries: not the storage's fault.
        assert_eq!(StorageFault::from_sqlite_code(2067), None);
        assert_eq!(StorageFault::from_sqlite_code(5), None);
    }

    #[test]
    fn postgres_disk_full_and_resource_exhaustion_are_insufficient_storage() {
        for state in ["53100", "53000", "53200", "53400", "58030"] {
            assert_eq!(
                StorageFault::from_sqlstate(state),
                Some(StorageFault::InsufficientStorage),
                "{state}"
            );
        }
    }

    #[test]
    fn postgres_lost_connections_are_unavailable_and_request_errors_are_not_faults() {
        for state in ["53300", "08006", "08001", "57P01", "57P03", "58P01"] {
            assert_eq!(
                StorageFault::from_sqlstate(state),
                Some(StorageFault::Unavailable),
                "{state}"
            );
        }
        for state in ["23505", "40001", "42P01", "22001"] {
            assert_eq!(StorageFault::from_sqlstate(state), None, "{state}");
        }
    }

    #[test]
    fn transport_failures_are_unavailable_and_enospc_is_insufficient_storage() {
        assert_eq!(
            StorageFault::of(&sqlx::Error::PoolTimedOut),
            Some(StorageFault::Unavailable)
        );
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            StorageFault::of(&sqlx::Error::Io(full)),
            Some(StorageFault::InsufficientStorage)
        );
        assert_eq!(StorageFault::of(&sqlx::Error::RowNotFound), None);
    }

    #[test]
    fn health_is_unhealthy_from_a_fault_until_cleared() {
        let health = StorageHealth::default();
        let seen = health.clone();
        assert_eq!(
            health.record(&StoreError::NotFound),
            None,
            "not a storage fault"
        );
        assert!(seen.current().is_none());
        health.record(&StoreError::Database(sqlx::Error::PoolClosed));
        assert_eq!(
            seen.current().map(|r| r.fault),
            Some(StorageFault::Unavailable)
        );
        health.clear();
        assert!(seen.current().is_none());
    }
}
