//! The inventory race on diesel-async: tasks share a pool of connections and
//! buy from a few hot products, through `occ::retry_async`.
//!
//! Sixteen tokio tasks share a deadpool pool of four connections; each buys
//! 100 items, one at a time, from one of three products. Two strategies run
//! one after the other on a freshly reset table:
//!
//! 1. **optimistic**: read the product, decrement in Rust, write it back with
//!    `update_versioned` inside `occ::retry_async`; a conflict runs the whole
//!    transaction again.
//! 2. **pessimistic** (PostgreSQL and MySQL/MariaDB): lock the row first with
//!    `Product::find_exclusive` (`SELECT ... FOR UPDATE`), then write. SQLite
//!    has no row locks, so on SQLite this strategy is left out.
//!
//! Each prints its purchases, retries, what left the shelves and the lost
//! updates (always 0); the example exits non-zero if any update was lost.
//!
//! On an embedded SQLite file (diesel-async's `SyncConnectionWrapper`):
//!
//! ```text
//! cargo run --features async-sqlite,deadpool --example inventory_async
//! ```
//!
//! On PostgreSQL or MySQL/MariaDB, through diesel-async's own pure-Rust
//! clients (no libpq, no libmysqlclient):
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --features async-postgres,deadpool --example inventory_async
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test \
//!     cargo run --features async-mysql,deadpool --example inventory_async
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::SimpleAsyncConnection;
use occ::async_prelude::*;
use tokio::sync::Barrier;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        stock -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone)]
#[diesel(table_name = products)]
struct Product {
    id: i32,
    name: String,
    stock: i32,
    #[occ(version)]
    version: i32,
}

const PRODUCTS: i32 = 3;
const INITIAL_STOCK: i32 = 10_000;
const TASKS: usize = 16;
const POOL_SIZE: usize = 4;
const PURCHASES_PER_TASK: usize = 100;

const CREATE_TABLE: &str = "CREATE TABLE products (\
     id INTEGER PRIMARY KEY, \
     name VARCHAR(64) NOT NULL, \
     stock INTEGER NOT NULL, \
     version INTEGER NOT NULL)";

type BoxError = Box<dyn Error + Send + Sync>;

/// Sixteen writers on three rows conflict a lot: short pauses, many attempts.
fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(500)
        .initial_backoff(Duration::from_micros(500))
        .max_backoff(Duration::from_millis(10))
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(
        feature = "async-postgres",
        feature = "async-mysql",
        feature = "async-mariadb"
    )),
    allow(dead_code)
)]
enum Strategy {
    Optimistic,
    Pessimistic,
}

/// The purchase, written once for every connection type through a macro: the
/// body is the same diesel and occ code on each.
macro_rules! shop {
    ($conn:ty) => {
        /// A pool of `POOL_SIZE` connections that each run `setup` first.
        pub fn pool(url: &str, setup: &'static str) -> Result<Pool<$conn>, BoxError> {
            let mut config = diesel_async::pooled_connection::ManagerConfig::default();
            config.custom_setup = Box::new(move |url| {
                Box::pin(async move {
                    let mut conn = <$conn as AsyncConnection>::establish(url).await?;
                    if !setup.is_empty() {
                        conn.batch_execute(setup)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    }
                    Ok(conn)
                })
            });
            let manager = AsyncDieselConnectionManager::new_with_config(url, config);
            Ok(Pool::builder(manager).max_size(POOL_SIZE).build()?)
        }

        pub async fn reset(conn: &mut $conn) -> Result<i64, OccError> {
            diesel::delete(products::table).execute(conn).await?;
            for id in 1..=PRODUCTS {
                diesel::insert_into(products::table)
                    .values((
                        products::id.eq(id),
                        products::name.eq(format!("product {id}")),
                        products::stock.eq(INITIAL_STOCK),
                        products::version.eq(1),
                    ))
                    .execute(conn)
                    .await?;
            }
            total_stock(conn).await
        }

        pub async fn total_stock(conn: &mut $conn) -> Result<i64, OccError> {
            let stocks: Vec<i32> = products::table.select(products::stock).load(conn).await?;
            Ok(stocks.into_iter().map(i64::from).sum())
        }

        /// One purchase; the number of attempts it took.
        pub async fn buy(conn: &mut $conn, strategy: Strategy, id: i32) -> Result<u32, OccError> {
            let retried = occ::retry_counted_async(conn, &policy(), async |conn| {
                let mut product = match strategy {
                    Strategy::Optimistic => {
                        products::table
                            .find(id)
                            .select(Product::as_select())
                            .first(conn)
                            .await?
                    }
                    Strategy::Pessimistic => lock(conn, id).await?,
                };
                product.stock -= 1;
                product.update_versioned(conn).await
            })
            .await;
            retried.result.map(|()| retried.attempts)
        }
    };
}

#[cfg(feature = "async-sqlite")]
mod sqlite {
    use super::*;
    pub type Conn = diesel_async::sync_connection_wrapper::SyncConnectionWrapper<SqliteConnection>;
    shop!(Conn);
    pub async fn lock(_: &mut Conn, _: i32) -> Result<Product, OccError> {
        unreachable!("SQLite has no row locks: the pessimistic strategy is not run on it")
    }
}

#[cfg(feature = "async-postgres")]
mod postgres {
    use super::*;
    pub type Conn = diesel_async::AsyncPgConnection;
    shop!(Conn);
    pub async fn lock(conn: &mut Conn, id: i32) -> Result<Product, OccError> {
        Product::find_exclusive(conn, id).await
    }
}

#[cfg(feature = "async-mysql")]
mod mysql {
    use super::*;
    pub type Conn = diesel_async::AsyncMysqlConnection;
    shop!(Conn);
    pub async fn lock(conn: &mut Conn, id: i32) -> Result<Product, OccError> {
        Product::find_exclusive(conn, id).await
    }
}

/// diesel 2.4's own MariaDB backend (`mariadb://` URLs).
#[cfg(feature = "async-mariadb")]
mod mariadb {
    use super::*;
    pub type Conn = diesel_async::AsyncMariadbConnection;
    shop!(Conn);
    pub async fn lock(conn: &mut Conn, id: i32) -> Result<Product, OccError> {
        Product::find_exclusive(conn, id).await
    }
}

/// Runs one strategy on `pool`: `true` if nothing was lost.
macro_rules! race {
    ($module:ident, $pool:expr, $strategy:expr) => {{
        let pool: Pool<$module::Conn> = $pool;
        let strategy: Strategy = $strategy;
        let before = $module::reset(&mut *pool.get().await?).await?;
        let barrier = Arc::new(Barrier::new(TASKS + 1));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let (mut bought, mut attempts) = (0u64, 0u64);
                for purchase in 0..PURCHASES_PER_TASK {
                    let id = 1 + ((task * 7 + purchase * 13) % PRODUCTS as usize) as i32;
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    let took = $module::buy(&mut conn, strategy, id)
                        .await
                        .map_err(|e| e.to_string())?;
                    bought += 1;
                    attempts += u64::from(took);
                }
                Ok::<_, String>((bought, attempts))
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        let (mut bought, mut attempts) = (0, 0);
        for task in tasks {
            let (b, a) = task.await??;
            bought += b;
            attempts += a;
        }
        let elapsed = start.elapsed();
        let sold = before - $module::total_stock(&mut *pool.get().await?).await?;
        let lost = i64::try_from(bought)? - sold;
        println!(
            "{strategy:?}: {bought} purchases, {} retries, {sold} sold from stock, \
             {lost} lost, {:.3} s, {:.0} purchases/s",
            attempts - bought,
            elapsed.as_secs_f64(),
            bought as f64 / elapsed.as_secs_f64()
        );
        lost == 0
    }};
}

fn unique_name() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("occ_inventory_async_{}_{micros}", std::process::id())
}

#[cfg(feature = "async-sqlite")]
async fn run_sqlite() -> Result<bool, BoxError> {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let url = path
        .to_str()
        .ok_or("temp dir path is not UTF-8")?
        .to_owned();
    let result = async {
        let mut conn = <sqlite::Conn as AsyncConnection>::establish(&url).await?;
        conn.batch_execute("PRAGMA journal_mode = WAL;").await?;
        conn.batch_execute(CREATE_TABLE).await?;
        println!(
            "inventory_async on SQLite {} (WAL): {TASKS} tasks, a pool of {POOL_SIZE}\n",
            path.display()
        );
        let pool = sqlite::pool(&url, "PRAGMA busy_timeout = 10000;")?;
        let ok = race!(sqlite, pool, Strategy::Optimistic);
        println!("Pessimistic: left out, SQLite has no row locks");
        Ok::<_, BoxError>(ok)
    }
    .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{url}{suffix}"));
    }
    result
}

#[cfg(feature = "async-postgres")]
async fn run_postgres(url: &str) -> Result<bool, BoxError> {
    let schema = unique_name();
    let mut admin = <postgres::Conn as AsyncConnection>::establish(url).await?;
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let result = async {
        let mut conn = <postgres::Conn as AsyncConnection>::establish(&url).await?;
        conn.batch_execute(CREATE_TABLE).await?;
        println!("inventory_async on PostgreSQL (schema {schema}): {TASKS} tasks, a pool of {POOL_SIZE}\n");
        let optimistic = race!(postgres, postgres::pool(&url, "")?, Strategy::Optimistic);
        let pessimistic = race!(postgres, postgres::pool(&url, "")?, Strategy::Pessimistic);
        Ok::<_, BoxError>(optimistic && pessimistic)
    }
    .await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    result
}

/// Runs both strategies in a database of its own on a MySQL/MariaDB server,
/// through connection module `$module`.
#[cfg(any(feature = "async-mysql", feature = "async-mariadb"))]
macro_rules! run_mysql_like {
    ($module:ident, $url:expr) => {{
        let url: &str = $url;
        let database = unique_name();
        let mut admin = <$module::Conn as AsyncConnection>::establish(url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await?;
        let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
        let url = format!("{base}/{database}");
        let result = async {
            let mut conn = <$module::Conn as AsyncConnection>::establish(&url).await?;
            conn.batch_execute(CREATE_TABLE).await?;
            println!(
                "inventory_async on MySQL/MariaDB through {} (database {database}): {TASKS} tasks, a pool of {POOL_SIZE}\n",
                stringify!($module)
            );
            let optimistic = race!($module, $module::pool(&url, "")?, Strategy::Optimistic);
            let pessimistic = race!($module, $module::pool(&url, "")?, Strategy::Pessimistic);
            Ok::<_, BoxError>(optimistic && pessimistic)
        }
        .await;
        admin
            .batch_execute(&format!("DROP DATABASE {database}"))
            .await?;
        result
    }};
}

#[cfg(feature = "async-mysql")]
async fn run_mysql(url: &str) -> Result<bool, BoxError> {
    run_mysql_like!(mysql, url)
}

#[cfg(feature = "async-mariadb")]
async fn run_mariadb(url: &str) -> Result<bool, BoxError> {
    run_mysql_like!(mariadb, url)
}

#[allow(dead_code)]
fn missing(feature: &str) -> Result<bool, BoxError> {
    Err(format!(
        "this build cannot reach that database: add `--features {feature},deadpool`, \
         e.g. `cargo run --features {feature},deadpool --example inventory_async`"
    )
    .into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let result = match url.as_deref() {
        None => {
            #[cfg(feature = "async-sqlite")]
            let result = run_sqlite().await;
            #[cfg(not(feature = "async-sqlite"))]
            let result = missing("async-sqlite");
            result
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            #[cfg(feature = "async-postgres")]
            let result = run_postgres(url).await;
            #[cfg(not(feature = "async-postgres"))]
            let result = missing("async-postgres");
            result
        }
        Some(url) if url.starts_with("mysql://") => {
            #[cfg(feature = "async-mysql")]
            let result = run_mysql(url).await;
            #[cfg(not(feature = "async-mysql"))]
            let result = missing("async-mysql");
            result
        }
        Some(url) if url.starts_with("mariadb://") => {
            #[cfg(feature = "async-mariadb")]
            let result = run_mariadb(url).await;
            #[cfg(not(feature = "async-mariadb"))]
            let result = missing("async-mariadb");
            result
        }
        Some(url) => Err(format!(
            "DATABASE_URL={url}: expected postgres://..., mysql://... or mariadb://..., \
             or leave it unset for SQLite"
        )
        .into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: updates were lost (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
