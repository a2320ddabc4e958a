//! The inventory race: many buyers, a few hot products, and three ways to
//! decrement a stock counter.
//!
//! Eight worker threads, each on its own connection, buy 200 items each (one
//! at a time, from one of three products picked at random) with three
//! strategies, one after the other on a freshly reset table:
//!
//! 1. **naive**: `SELECT` the row, compute the new stock in Rust, `UPDATE ...
//!    SET stock = <new>`. Two buyers that read the same stock both write
//!    `stock - 1`: one sale disappears (a lost update).
//! 2. **optimistic**: the same read and write, each a request of its own as
//!    in a web service, the write with `update_versioned`, which only matches
//!    the row if its version is still the one read; a version conflict sends
//!    the buyer back to read again (as a 412 sends an HTTP client).
//! 3. **pessimistic**: lock the row before reading it (`Product::find_exclusive`,
//!    `SELECT ... FOR UPDATE`) inside `occ::retry` on PostgreSQL and
//!    MySQL/MariaDB; SQLite has no row locks, so there the transaction takes
//!    the database's write lock up front with `immediate_transaction`.
//!
//! For each strategy the example prints how many purchases succeeded, how many
//! conflicts occ reported (version conflicts apart from busy, deadlock and
//! serialization errors), how many retries that cost, how much stock actually
//! left the shelves, the lost updates, the time and the throughput, then one
//! line per strategy saying what the run proved. It exits non-zero if the
//! optimistic or pessimistic strategy lost an update.
//!
//! Run it on an embedded SQLite file (a fresh one in the temp directory, WAL
//! mode, deleted at the end):
//!
//! ```text
//! cargo run --example inventory
//! ```
//!
//! On PostgreSQL (in a fresh schema, dropped at the end):
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --features postgres --example inventory
//! ```
//!
//! On MySQL or MariaDB (in a fresh database, dropped at the end):
//!
//! ```text
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test \
//!     cargo run --features mysql --example inventory
//! ```

// Built without any backend, it only prints which feature to add.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_macros)
)]

use std::error::Error;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        stock -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Identifiable, Optimistic, Debug, Clone)]
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
const WORKERS: usize = 8;
const PURCHASES_PER_WORKER: usize = 200;
/// The pause between the naive read and its write: the window in which another
/// buyer's write gets lost.
const RACE_WINDOW: Duration = Duration::from_micros(50);
/// How often the SQLite pessimistic loop tries `BEGIN IMMEDIATE` again after
/// `busy_timeout` ran out.
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_ATTEMPTS: u32 = 20;

const CREATE_TABLE: &str = "CREATE TABLE products (\
     id INTEGER PRIMARY KEY, \
     name VARCHAR(64) NOT NULL, \
     stock INTEGER NOT NULL, \
     version INTEGER NOT NULL)";

type BoxError = Box<dyn Error + Send + Sync>;

/// Eight writers on three rows conflict a lot: short jittered pauses and enough
/// attempts that no purchase gives up.
fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(200)
        .initial_backoff(Duration::from_micros(500))
        .max_backoff(Duration::from_millis(10))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Naive,
    Optimistic,
    Pessimistic,
}

/// What one worker saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    /// Purchases that returned `Ok`.
    ops: u64,
    /// Purchases that returned an error (retries exhausted, or not retryable).
    failed: u64,
    first_error: Option<String>,
    /// Times the body of a purchase ran (its first run and every retry).
    attempts: u64,
    /// `OccError::Conflict`: a versioned write found another version.
    version_conflicts: u64,
    /// Other retryable errors: SQLite busy, deadlocks, serialization failures.
    busy_or_deadlock: u64,
}

impl Tally {
    fn record(&mut self, error: &OccError) {
        if error.is_conflict() {
            self.version_conflicts += 1;
        } else if error.is_retryable() {
            self.busy_or_deadlock += 1;
        }
    }

    fn add(&mut self, other: Tally) {
        self.ops += other.ops;
        self.failed += other.failed;
        self.first_error = self.first_error.take().or(other.first_error);
        self.attempts += other.attempts;
        self.version_conflicts += other.version_conflicts;
        self.busy_or_deadlock += other.busy_or_deadlock;
    }
}

/// The operations the scenario needs from a connection. The bodies are the same
/// diesel/occ code on every backend, so a macro writes them once per connection
/// type; only the pessimistic purchase differs between SQLite and the servers.
trait Shop: Sized {
    const PESSIMISTIC: &'static str;
    fn reset(&mut self) -> Result<(), OccError>;
    fn total_stock(&mut self) -> Result<i64, OccError>;
    fn buy_naive(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError>;
    fn buy_optimistic(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError>;
    fn buy_pessimistic(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError>;
}

macro_rules! read_modify_write {
    () => {
        fn reset(&mut self) -> Result<(), OccError> {
            diesel::delete(products::table).execute(self)?;
            for id in 1..=PRODUCTS {
                diesel::insert_into(products::table)
                    .values((
                        products::id.eq(id),
                        products::name.eq(format!("product {id}")),
                        products::stock.eq(INITIAL_STOCK),
                        products::version.eq(1),
                    ))
                    .execute(self)?;
            }
            Ok(())
        }

        fn total_stock(&mut self) -> Result<i64, OccError> {
            let stocks = products::table.select(products::stock).load::<i32>(self)?;
            Ok(stocks.into_iter().map(i64::from).sum())
        }

        // No transaction, no version check: the read and the write are two
        // autocommitted statements with a gap between them.
        fn buy_naive(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError> {
            tally.attempts += 1;
            let product = products::table
                .find(id)
                .select(Product::as_select())
                .first::<Product>(self)?;
            std::thread::sleep(RACE_WINDOW);
            diesel::update(products::table.find(id))
                .set(products::stock.eq(product.stock - 1))
                .execute(self)?;
            Ok(())
        }

        // As a web service does it: the read is a request of its own (a GET
        // that hands out the version), the write another (a PUT with
        // If-Match), and nothing is held open between the two. The versioned
        // UPDATE matches only the version read; when another buyer wrote
        // first it is a `Conflict`, and the buyer reads again, as a client
        // does after a 412.
        fn buy_optimistic(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError> {
            let policy = policy();
            let mut attempt = 1;
            loop {
                tally.attempts += 1;
                let outcome = products::table
                    .find(id)
                    .select(Product::as_select())
                    .first::<Product>(self)
                    .map_err(OccError::from)
                    .and_then(|mut product| {
                        std::thread::sleep(RACE_WINDOW);
                        product.stock -= 1;
                        product.update_versioned(self)
                    });
                match outcome {
                    Err(error) if policy.should_retry(&error, attempt) => {
                        tally.record(&error);
                        std::thread::sleep(policy.backoff(attempt));
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl Shop for SqliteConnection {
    const PESSIMISTIC: &'static str = "immediate_transaction (SQLite's write lock)";

    read_modify_write!();

    // SQLite locks the whole database, not rows: BEGIN IMMEDIATE takes the
    // write lock before the read, waiting up to busy_timeout for it.
    fn buy_pessimistic(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError> {
        let mut attempt = 1;
        loop {
            tally.attempts += 1;
            let outcome = self.immediate_transaction(|conn| {
                let product = products::table
                    .find(id)
                    .select(Product::as_select())
                    .first::<Product>(conn)?;
                std::thread::sleep(RACE_WINDOW);
                diesel::update(products::table.find(id))
                    .set((
                        products::stock.eq(product.stock - 1),
                        products::version.eq(product.version + 1),
                    ))
                    .execute(conn)?;
                Ok::<_, OccError>(())
            });
            match outcome {
                Err(error @ OccError::Busy(_)) if attempt < SQLITE_BUSY_ATTEMPTS => {
                    tally.record(&error);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// PostgreSQL and MySQL/MariaDB: `SELECT ... FOR UPDATE` makes the second buyer
/// wait for the first one's commit and then read the new stock. The write also
/// moves the version on, so versioned writers running at the same time notice.
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! row_locking_shop {
    ($conn:ty) => {
        impl Shop for $conn {
            const PESSIMISTIC: &'static str = "Product::find_exclusive (SELECT ... FOR UPDATE)";

            read_modify_write!();

            fn buy_pessimistic(&mut self, id: i32, tally: &mut Tally) -> Result<(), OccError> {
                occ::retry(self, &policy(), |conn| {
                    tally.attempts += 1;
                    let outcome = Product::find_exclusive(conn, id).and_then(|product| {
                        std::thread::sleep(RACE_WINDOW);
                        diesel::update(products::table.find(id))
                            .set((
                                products::stock.eq(product.stock - 1),
                                products::version.eq(product.version + 1),
                            ))
                            .execute(conn)
                            .map(drop)
                            .map_err(OccError::from)
                    });
                    if let Err(error) = &outcome {
                        tally.record(error);
                    }
                    outcome
                })
            }
        }
    };
}

#[cfg(feature = "postgres")]
row_locking_shop!(PgConnection);
#[cfg(feature = "mysql")]
row_locking_shop!(MysqlConnection);

/// xorshift64: enough randomness to spread purchases, without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Report {
    strategy: Strategy,
    method: &'static str,
    tally: Tally,
    sold: i64,
    elapsed: Duration,
}

impl Report {
    fn lost(&self) -> i64 {
        i64::try_from(self.tally.ops).unwrap_or(i64::MAX) - self.sold
    }

    fn retries(&self) -> u64 {
        self.tally.attempts - self.tally.ops - self.tally.failed
    }

    fn throughput(&self) -> f64 {
        self.tally.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let t = &self.tally;
        println!("{:?}: {}", self.strategy, self.method);
        println!("  +----------------------------+--------------+");
        let row = |label: &str, value: String| println!("  | {label:<26} | {value:>12} |");
        row("operations (succeeded)", t.ops.to_string());
        row("operations failed", t.failed.to_string());
        row(
            "conflicts detected",
            (t.version_conflicts + t.busy_or_deadlock).to_string(),
        );
        row("  version conflicts", t.version_conflicts.to_string());
        row("  busy/deadlock/serialize", t.busy_or_deadlock.to_string());
        row("retries", self.retries().to_string());
        row("expected total sold", t.ops.to_string());
        row("actual sold (from stock)", self.sold.to_string());
        row("lost updates", self.lost().to_string());
        row("elapsed", format!("{:.3} s", self.elapsed.as_secs_f64()));
        row("throughput", format!("{:.0} ops/s", self.throughput()));
        println!("  +----------------------------+--------------+");
        if let Some(error) = &t.first_error {
            println!("  first error: {error}");
        }
    }
}

fn run_strategy<C: Shop>(
    connect: &(dyn Fn() -> Result<C, BoxError> + Sync),
    strategy: Strategy,
) -> Result<Report, BoxError> {
    let mut admin = connect()?;
    admin.reset()?;
    let before = admin.total_stock()?;
    let barrier = Barrier::new(WORKERS + 1);

    let (tally, elapsed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<Tally, String> {
                    let conn = connect();
                    // Wait even if the connection failed, or main waits forever.
                    barrier.wait();
                    let mut conn = conn.map_err(|e| format!("worker {worker}: {e}"))?;
                    let mut rng = XorShift::new(worker as u64 + 1);
                    let mut tally = Tally::default();
                    for _ in 0..PURCHASES_PER_WORKER {
                        let id = 1 + (rng.next() % PRODUCTS as u64) as i32;
                        let outcome = match strategy {
                            Strategy::Naive => conn.buy_naive(id, &mut tally),
                            Strategy::Optimistic => conn.buy_optimistic(id, &mut tally),
                            Strategy::Pessimistic => conn.buy_pessimistic(id, &mut tally),
                        };
                        match outcome {
                            Ok(()) => tally.ops += 1,
                            Err(error) => {
                                tally.failed += 1;
                                tally.first_error.get_or_insert_with(|| error.to_string());
                            }
                        }
                    }
                    Ok(tally)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = Tally::default();
        let mut errors = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(Ok(tally)) => total.add(tally),
                Ok(Err(error)) => errors.push(error),
                Err(_) => errors.push("a worker panicked".to_owned()),
            }
        }
        let elapsed = start.elapsed();
        if errors.is_empty() {
            Ok((total, elapsed))
        } else {
            Err(errors.join("; "))
        }
    })?;

    let sold = before - admin.total_stock()?;
    let method = match strategy {
        Strategy::Naive => "SELECT, then UPDATE stock = <value computed in Rust>, no transaction",
        Strategy::Optimistic => "read, then update_versioned; a conflict reads again",
        Strategy::Pessimistic => C::PESSIMISTIC,
    };
    Ok(Report {
        strategy,
        method,
        tally,
        sold,
        elapsed,
    })
}

/// Runs the three strategies; `Ok(false)` if a safe strategy lost an update.
fn scenario<C: Shop>(
    backend: &str,
    connect: &(dyn Fn() -> Result<C, BoxError> + Sync),
) -> Result<bool, BoxError> {
    println!(
        "inventory on {backend}: {PRODUCTS} products x {INITIAL_STOCK} in stock, \
         {WORKERS} workers x {PURCHASES_PER_WORKER} purchases of 1\n"
    );
    let mut reports = Vec::new();
    for strategy in [Strategy::Naive, Strategy::Optimistic, Strategy::Pessimistic] {
        let report = run_strategy(connect, strategy)?;
        report.print();
        println!();
        reports.push(report);
    }

    println!("summary on {backend}:");
    println!(
        "  {:<12} {:>6} {:>9} {:>8} {:>9} {:>7} {:>5} {:>9} {:>8}",
        "strategy", "ops", "conflicts", "retries", "expected", "actual", "lost", "elapsed", "ops/s"
    );
    for r in &reports {
        println!(
            "  {:<12} {:>6} {:>9} {:>8} {:>9} {:>7} {:>5} {:>8.3}s {:>8.0}",
            format!("{:?}", r.strategy),
            r.tally.ops,
            r.tally.version_conflicts + r.tally.busy_or_deadlock,
            r.retries(),
            r.tally.ops,
            r.sold,
            r.lost(),
            r.elapsed.as_secs_f64(),
            r.throughput(),
        );
    }
    println!();

    // One line per strategy: what this run proved.
    let mut ok = true;
    for r in &reports {
        let t = &r.tally;
        if r.strategy != Strategy::Naive && (r.lost() != 0 || t.failed != 0) {
            ok = false;
            println!(
                "FAILED {:?}: {} lost updates, {} failed purchases",
                r.strategy,
                r.lost(),
                t.failed
            );
            continue;
        }
        match r.strategy {
            Strategy::Naive if r.lost() > 0 => println!(
                "naive:       {} of {} sales lost: two buyers read the same stock and both wrote it minus one",
                r.lost(),
                t.ops
            ),
            Strategy::Naive => println!(
                "naive:       no sale lost this time: {backend} happened to serialize every \
                 read-modify-write (the race is still there; run it again)"
            ),
            Strategy::Optimistic => println!(
                "optimistic:  every sale counted: the version check refused {} writes of a stale \
                 read, and each buyer read again{}",
                t.version_conflicts,
                busy(t.busy_or_deadlock)
            ),
            Strategy::Pessimistic => println!(
                "pessimistic: every sale counted with no version to check: the lock made each \
                 buyer wait for the one before{}",
                busy(t.busy_or_deadlock)
            ),
        }
    }
    Ok(ok)
}

/// The retries that were waits for the database, not stale versions.
fn busy(retries: u64) -> String {
    match retries {
        0 => String::new(),
        n => format!(" ({n} retries after busy, deadlock or serialization errors)"),
    }
}

fn unique_name() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("occ_inventory_{}_{micros}", std::process::id())
}

#[cfg(feature = "sqlite")]
fn run_sqlite() -> Result<bool, BoxError> {
    use diesel::connection::SimpleConnection;

    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let url = path
        .to_str()
        .ok_or("temp dir path is not UTF-8")?
        .to_owned();
    let connect = || -> Result<SqliteConnection, BoxError> {
        let mut conn = SqliteConnection::establish(&url)?;
        // synchronous = NORMAL: in WAL mode a commit is durable at the next
        // checkpoint, which keeps the example fast without changing the race.
        conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")?;
        Ok(conn)
    };
    let result = (|| {
        let mut conn = connect()?;
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
        conn.batch_execute(CREATE_TABLE)?;
        drop(conn);
        scenario(&format!("SQLite {} (WAL)", path.display()), &connect)
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{url}{suffix}"));
    }
    result
}

#[cfg(feature = "postgres")]
fn run_postgres(url: &str) -> Result<bool, BoxError> {
    use diesel::connection::SimpleConnection;

    let schema = unique_name();
    let mut admin = PgConnection::establish(url)?;
    admin.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
    let connect = || -> Result<PgConnection, BoxError> {
        let mut conn = PgConnection::establish(url)?;
        conn.batch_execute(&format!("SET search_path TO {schema}"))?;
        Ok(conn)
    };
    let result = connect()
        .and_then(|mut conn| Ok(conn.batch_execute(CREATE_TABLE)?))
        .and_then(|()| scenario(&format!("PostgreSQL (schema {schema})"), &connect));
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
    result
}

#[cfg(feature = "mysql")]
fn run_mysql(url: &str) -> Result<bool, BoxError> {
    use diesel::connection::SimpleConnection;

    let database = unique_name();
    let db_url = with_database(url, &database)?;
    let mut admin = MysqlConnection::establish(url)?;
    admin.batch_execute(&format!("CREATE DATABASE {database}"))?;
    let connect =
        || -> Result<MysqlConnection, BoxError> { Ok(MysqlConnection::establish(&db_url)?) };
    let result = connect()
        .and_then(|mut conn| Ok(conn.batch_execute(CREATE_TABLE)?))
        .and_then(|()| scenario(&format!("MySQL/MariaDB (database {database})"), &connect));
    admin.batch_execute(&format!("DROP DATABASE {database}"))?;
    result
}

/// `mysql://user@host:port/db?opts` with `db` replaced by `database`.
#[cfg(feature = "mysql")]
fn with_database(url: &str, database: &str) -> Result<String, BoxError> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").ok_or("DATABASE_URL has no scheme")? + 3;
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn missing_feature(feature: &str, backend: &str) -> Result<bool, BoxError> {
    Err(format!(
        "this build has no {backend} support: add `--features {feature}`, \
         e.g. `cargo run --features {feature} --example inventory`"
    )
    .into())
}

fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let result = match url.as_deref() {
        None => {
            #[cfg(feature = "sqlite")]
            {
                run_sqlite()
            }
            #[cfg(not(feature = "sqlite"))]
            {
                missing_feature("sqlite", "SQLite (used when DATABASE_URL is unset)")
            }
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            #[cfg(feature = "postgres")]
            {
                run_postgres(url)
            }
            #[cfg(not(feature = "postgres"))]
            {
                missing_feature("postgres", "PostgreSQL")
            }
        }
        Some(url) if url.starts_with("mysql://") => {
            #[cfg(feature = "mysql")]
            {
                run_mysql(url)
            }
            #[cfg(not(feature = "mysql"))]
            {
                missing_feature("mysql", "MySQL")
            }
        }
        Some(url) => Err(format!(
            "DATABASE_URL={url}: expected postgres://... or mysql://..., \
             or leave it unset for SQLite"
        )
        .into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: a safe strategy lost updates (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
