//! A repository layer as a service writes one: functions generic over the
//! model and the connection, bounded only by occ's public traits (`Store`,
//! `Reload` and their async namesakes), used unchanged with two models on
//! every kind of connection: SQLite, PostgreSQL and MariaDB directly and
//! through r2d2; their diesel-async connections directly and through
//! deadpool and bb8. Two connections race on one row in each.

mod common;

use common::Counter;
use common::TestDb;
use occ::prelude::*;
use occ::{BatchReport, Reload, Store};

diesel::table! {
    docs (slug) {
        slug -> Text,
        title -> Text,
        revision -> BigInt,
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Optimistic)]
#[diesel(primary_key(slug))]
struct Doc {
    slug: String,
    title: String,
    #[occ(version)]
    revision: i64,
}

fn setup<D: TestDb>(db: &D) {
    db.exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)");
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0), (2, 0, 0)");
    db.exec("CREATE TABLE docs (slug {key_text} PRIMARY KEY, title TEXT NOT NULL, revision BIGINT NOT NULL)");
    db.exec("INSERT INTO docs (slug, title, revision) VALUES ('a', 'A', 0), ('b', 'B', 0), ('c', 'C', 0)");
}

/// What [`save`] did.
#[derive(Debug, PartialEq)]
enum Saved {
    Written,
    /// Someone else wrote the row first: the model now holds it as it is.
    Reloaded,
}

/// The repository: a stale model is reloaded instead of an error.
fn save<M, C>(model: &mut M, conn: &mut C) -> Result<Saved, OccError>
where
    M: OptimisticDsl,
    C: Reload<M>,
{
    match model.update_versioned(conn) {
        Ok(()) => Ok(Saved::Written),
        Err(e) if e.is_conflict() => {
            model.reload(conn)?;
            Ok(Saved::Reloaded)
        }
        Err(e) => Err(e),
    }
}

fn save_all<M, C>(models: &mut [M], conn: &mut C) -> Result<BatchReport<M>, OccError>
where
    M: OptimisticDsl,
    C: Store<M>,
{
    M::update_versioned_all(conn, models)
}

fn remove<M, C>(model: &M, conn: &mut C) -> Result<(), OccError>
where
    M: OptimisticDsl,
    C: Store<M>,
{
    model.delete_versioned(conn)
}

/// Reads the row of `model`'s key, applies `change` and writes it, again
/// until no one else wrote it in between.
fn modify<M, C>(conn: &mut C, model: &M, change: impl Fn(&mut M)) -> Result<M, OccError>
where
    M: OptimisticDsl + Clone,
    C: Reload<M>,
{
    let policy = RetryPolicy::default().max_attempts(500);
    occ::retry(conn, &policy, |conn| {
        let mut fresh = model.clone();
        fresh.reload(conn)?;
        change(&mut fresh);
        fresh.update_versioned(conn)?;
        Ok(fresh)
    })
}

fn counter(id: i32) -> Counter {
    Counter {
        id,
        value: 0,
        version: 0,
    }
}

fn doc(slug: &str, revision: i64) -> Doc {
    Doc {
        slug: slug.to_owned(),
        title: slug.to_uppercase(),
        revision,
    }
}

/// The repository's every function on connections from `connect`.
fn exercise<C>(connect: impl Fn() -> C + Sync)
where
    C: Reload<Counter> + Reload<Doc>,
{
    let mut conn = connect();
    let (mut mine, mut theirs) = (counter(1), counter(1));
    mine.value = 5;
    assert_eq!(save(&mut mine, &mut conn).unwrap(), Saved::Written);
    theirs.value = 7;
    assert_eq!(save(&mut theirs, &mut connect()).unwrap(), Saved::Reloaded);
    assert_eq!(theirs, mine);

    // The second model through the same functions: a batch with one stale row.
    let mut batch = vec![doc("a", 0), doc("b", 0), doc("c", 3)];
    let report = save_all(&mut batch, &mut conn).unwrap();
    assert_eq!(report.written(), ["a".to_owned(), "b".to_owned()]);
    assert_eq!(report.conflicts(), [("c".to_owned(), 0)]);
    assert_eq!((batch[0].revision, batch[2].revision), (1, 3));
    assert!(remove(&batch[2], &mut conn).unwrap_err().is_conflict());
    remove(&batch[0], &mut conn).unwrap();
    assert!(remove(&batch[0], &mut conn).unwrap_err().is_not_found());

    // Two connections race on one row through `modify`: no increment lost.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut conn = connect();
                for _ in 0..20 {
                    modify(&mut conn, &counter(2), |c| c.value += 1).unwrap();
                }
            });
        }
    });
    let mut total = counter(2);
    total.reload(&mut conn).unwrap();
    assert_eq!((total.value, total.version), (40, 40));
}

per_backend! {
    fn a_generic_repository_on_a_connection(db) {
        setup(&db);
        exercise(|| db.conn());
    }
}

#[cfg(feature = "r2d2")]
mod r2d2 {
    use super::*;

    per_backend! {
        fn a_generic_repository_on_r2d2_pooled_connections(db) {
            setup(&db);
            let pool = db.pool(3);
            exercise(|| pool.get().unwrap());
        }
    }
}

#[cfg(feature = "async")]
mod nonblocking {
    use std::future::Future;

    use occ::async_prelude::*;
    use occ::{AsyncReload, AsyncStore, BatchReport};

    use super::common::nonblocking::AsyncTestDb;
    use super::{counter, doc, setup, Counter, Doc, Saved};
    use crate::per_async_backend;

    async fn save<M, C>(model: &mut M, conn: &mut C) -> Result<Saved, OccError>
    where
        M: AsyncOptimisticDsl,
        C: AsyncReload<M>,
    {
        match model.update_versioned(conn).await {
            Ok(()) => Ok(Saved::Written),
            Err(e) if e.is_conflict() => {
                model.reload(conn).await?;
                Ok(Saved::Reloaded)
            }
            Err(e) => Err(e),
        }
    }

    async fn save_all<M, C>(models: &mut [M], conn: &mut C) -> Result<BatchReport<M>, OccError>
    where
        M: AsyncOptimisticDsl,
        C: AsyncStore<M>,
    {
        M::update_versioned_all(conn, models).await
    }

    async fn remove<M, C>(model: &M, conn: &mut C) -> Result<(), OccError>
    where
        M: AsyncOptimisticDsl,
        C: AsyncStore<M>,
    {
        model.delete_versioned(conn).await
    }

    async fn modify<M, C>(
        conn: &mut C,
        model: &M,
        change: impl Fn(&mut M) + Sync,
    ) -> Result<M, OccError>
    where
        M: AsyncOptimisticDsl + Clone,
        C: AsyncReload<M>,
    {
        let policy = RetryPolicy::default().max_attempts(500);
        occ::retry_async(conn, &policy, async |conn| {
            let mut fresh = model.clone();
            fresh.reload(conn).await?;
            change(&mut fresh);
            fresh.update_versioned(conn).await?;
            Ok(fresh)
        })
        .await
    }

    /// The async repository's every function on connections from `connect`.
    async fn exercise<C, F>(connect: impl Fn() -> F)
    where
        C: AsyncReload<Counter> + AsyncReload<Doc>,
        F: Future<Output = C>,
    {
        let mut conn = connect().await;
        let (mut mine, mut theirs) = (counter(1), counter(1));
        mine.value = 5;
        assert_eq!(save(&mut mine, &mut conn).await.unwrap(), Saved::Written);
        theirs.value = 7;
        let mut other = connect().await;
        assert_eq!(
            save(&mut theirs, &mut other).await.unwrap(),
            Saved::Reloaded
        );
        assert_eq!(theirs, mine);

        let mut batch = vec![doc("a", 0), doc("b", 0), doc("c", 3)];
        let report = save_all(&mut batch, &mut conn).await.unwrap();
        assert_eq!(report.written(), ["a".to_owned(), "b".to_owned()]);
        assert_eq!(report.conflicts(), [("c".to_owned(), 0)]);
        assert!(remove(&batch[2], &mut conn)
            .await
            .unwrap_err()
            .is_conflict());
        remove(&batch[0], &mut conn).await.unwrap();
        assert!(remove(&batch[0], &mut conn)
            .await
            .unwrap_err()
            .is_not_found());

        // Two connections race on one row: their statements interleave on
        // the server.
        let race = async |conn: &mut C| {
            for _ in 0..20 {
                modify(conn, &counter(2), |c| c.value += 1).await.unwrap();
            }
        };
        tokio::join!(race(&mut conn), race(&mut other));
        let mut total = counter(2);
        total.reload(&mut conn).await.unwrap();
        assert_eq!((total.value, total.version), (40, 40));
    }

    per_async_backend! {
        async fn a_generic_repository_on_an_async_connection(db) {
            setup(&db);
            exercise(|| db.connect()).await;
        }
    }

    #[cfg(feature = "deadpool")]
    mod deadpool {
        use super::*;

        per_async_backend! {
            async fn a_generic_repository_on_deadpool_connections(db) {
                setup(&db);
                let pool = &db.deadpool(3);
                exercise(move || async move { pool.get().await.unwrap() }).await;
            }
        }
    }

    #[cfg(feature = "bb8")]
    mod bb8 {
        use super::*;

        per_async_backend! {
            async fn a_generic_repository_on_bb8_connections(db) {
                setup(&db);
                let pool = &db.bb8(3).await;
                exercise(move || async move { pool.get().await.unwrap() }).await;
            }
        }
    }
}
