//! The store on both engines: migrations are idempotent and safe when several control-plane
//! processes start at once (no advisory locks: CockroachDB has none).

use crate::support::{Backend, TestDb};
use freya_control::store::{PoolSize, Store};

const POOL: PoolSize = PoolSize {
    min_connections: 0,
    max_connections: 3,
};

async fn concurrent_migrators_all_succeed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Store::connect(&db.url, POOL).await.expect("connect"));
    }
    let runs = stores.iter().map(|s| s.migrate());
    for outcome in futures::future::join_all(runs).await {
        outcome.expect("every concurrent migrator succeeds");
    }
    // And again, once everything is applied.
    stores[0]
        .migrate()
        .await
        .expect("a repeated migration is a no-op");
    assert!(stores[0].config_version().await.expect("schema in place") >= 1);
    for store in &stores {
        store.close().await;
    }
    db.cleanup().await;
}

mod on_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_migrators_all_succeed() {
        super::concurrent_migrators_all_succeed(super::Backend::Sqlite).await
    }
}

mod on_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_migrators_all_succeed() {
        super::concurrent_migrators_all_succeed(super::Backend::Postgres).await
    }
}
