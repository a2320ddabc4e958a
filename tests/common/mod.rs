//! One isolated database per test, on each backend.
//!
//! SQLite: a fresh file per test (several connections can race on it).
//! PostgreSQL: a schema per test, selected through `search_path` on every
//! connection. MySQL/MariaDB: a database per test. Server tests run when
//! `OCC_PG_URL` / `OCC_MYSQL_URL` are set; with `OCC_REQUIRE_SERVERS=1` (as CI
//! sets it) a missing URL fails the test instead of skipping it.

#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "async")]
pub mod nonblocking;

#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use occ::OccError;

/// A service's own error type, as the retry guide (src/guide/retry.md) writes it: the
/// retry tests of the sync and the async API return it from their bodies.
#[derive(Debug)]
pub enum AppError {
    InsufficientStock { left: i32 },
    Occ(OccError),
}

diesel::table! {
    counters (id) {
        id -> Integer,
        value -> Integer,
        version -> Integer,
    }
}

/// The row most suites race on: a counter with an `i32` version.
#[derive(
    diesel::Queryable,
    diesel::Selectable,
    diesel::Insertable,
    occ::Optimistic,
    Debug,
    Clone,
    PartialEq,
)]
pub struct Counter {
    pub id: i32,
    pub value: i32,
    #[occ(version)]
    pub version: i32,
}

impl From<OccError> for AppError {
    fn from(error: OccError) -> Self {
        Self::Occ(error)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Occ(error.into())
    }
}

impl occ::AsOccError for AppError {
    fn as_occ_error(&self) -> Option<&OccError> {
        match self {
            Self::Occ(error) => Some(error),
            Self::InsufficientStock { .. } => None,
        }
    }
}

/// Declares each test body once and runs it on every enabled backend:
/// `tests/<file>.rs` gets modules `sqlite`, `postgres` and `mysql`, each with one
/// `#[test]` per body. In a body, `$db` is the test's database (`$db.conn()`
/// opens a connection, `$db.exec(..)` runs DDL with `{ts}` etc. replaced).
#[macro_export]
macro_rules! per_backend {
    ($(fn $name:ident($db:ident) $body:block)*) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let $db = $crate::common::SqliteDb::new(concat!(module_path!(), "::", stringify!($name)));
                    $body
                }
            )*
        }
        $crate::per_server! { $(fn $name($db) $body)* }
    };
}

/// Like [`per_backend!`], for what only the server backends can do (row
/// locks): modules `postgres`, `mysql` and (feature `mariadb`) `mariadb`.
#[macro_export]
macro_rules! per_server {
    ($(fn $name:ident($db:ident) $body:block)*) => {
        #[cfg(feature = "postgres")]
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some($db) = $crate::common::PgDb::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
        #[cfg(feature = "mysql")]
        mod mysql {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some($db) = <$crate::common::MysqlDb>::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
        // diesel 2.4's own MariaDB backend, on the same server.
        #[cfg(all(feature = "mysql", feature = "mariadb"))]
        mod mariadb {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some($db) = $crate::common::MysqlDb::<diesel::MariadbConnection>::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
    };
}

/// What each backend calls the column types a test table needs.
pub struct Dialect {
    /// A timestamp with microseconds.
    pub ts: &'static str,
    /// A string usable in a key or an index.
    pub key_text: &'static str,
}

/// The test database of one backend.
pub trait TestDb {
    type Conn: Connection;
    const DIALECT: Dialect;
    /// A new connection to this test's database.
    fn conn(&self) -> Self::Conn;
    /// An r2d2 pool of `size` connections to this test's database.
    #[cfg(feature = "r2d2")]
    fn pool(&self, size: u32) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<Self::Conn>>
    where
        Self::Conn: diesel::r2d2::R2D2Connection + 'static;
    /// Runs SQL after replacing `{ts}` and `{key_text}` with this backend's types.
    fn exec(&self, sql: &str) {
        let sql = sql
            .replace("{ts}", Self::DIALECT.ts)
            .replace("{key_text}", Self::DIALECT.key_text);
        self.conn()
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("setup failed: {e}\n{sql}"));
    }
}

/// A short, unique, identifier-safe name for a test's schema or database.
fn db_name(test: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in test.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let tail: String = test
        .rsplit("::")
        .next()
        .unwrap_or(test)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    format!(
        "occ_{tail}_{:08x}{:x}_{}",
        hash as u32,
        std::process::id() % 0xfff,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
}

fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("OCC_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("{var} is not set, and OCC_REQUIRE_SERVERS=1 forbids skipping server tests")
        }
        _ => {
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

#[cfg(feature = "sqlite")]
pub struct SqliteDb {
    path: PathBuf,
}

#[cfg(feature = "sqlite")]
impl SqliteDb {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", db_name(test)));
        let _ = std::fs::remove_file(&path);
        let db = Self { path };
        db.conn()
            .batch_execute("PRAGMA journal_mode = WAL;")
            .expect("WAL mode");
        db
    }

    /// The database file.
    pub fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}

#[cfg(feature = "sqlite")]
impl Drop for SqliteDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(feature = "sqlite")]
impl TestDb for SqliteDb {
    type Conn = diesel::SqliteConnection;
    const DIALECT: Dialect = Dialect {
        ts: "TEXT",
        key_text: "TEXT",
    };
    fn conn(&self) -> Self::Conn {
        let mut conn = diesel::SqliteConnection::establish(self.path.to_str().unwrap())
            .expect("open sqlite file");
        conn.batch_execute(SQLITE_PRAGMAS).expect("sqlite pragmas");
        conn
    }
    #[cfg(feature = "r2d2")]
    fn pool(&self, size: u32) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<Self::Conn>> {
        pool(self.path.to_str().unwrap(), size, SQLITE_PRAGMAS)
    }
}

#[cfg(feature = "sqlite")]
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// A pool whose every connection first runs `setup`.
#[cfg(feature = "r2d2")]
fn pool<C>(
    url: &str,
    size: u32,
    setup: &str,
) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<C>>
where
    C: diesel::r2d2::R2D2Connection + 'static,
{
    #[derive(Debug)]
    struct Setup(String);
    impl<C: Connection> diesel::r2d2::CustomizeConnection<C, diesel::r2d2::Error> for Setup {
        fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
            if !self.0.is_empty() {
                conn.batch_execute(&self.0)
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
            Ok(())
        }
    }
    diesel::r2d2::Pool::builder()
        .max_size(size)
        .connection_customizer(Box::new(Setup(setup.to_owned())))
        .build(diesel::r2d2::ConnectionManager::new(url))
        .expect("build the pool")
}

#[cfg(feature = "postgres")]
pub struct PgDb {
    url: String,
    schema: String,
}

#[cfg(feature = "postgres")]
impl PgDb {
    pub fn new(test: &str) -> Option<Self> {
        let url = server_url("OCC_PG_URL")?;
        let schema = db_name(test);
        let mut conn = diesel::PgConnection::establish(&url).expect("connect to OCC_PG_URL");
        conn.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .expect("create test schema");
        Some(Self { url, schema })
    }

    /// The server's URL and the test's schema.
    pub fn parts(&self) -> (&str, &str) {
        (&self.url, &self.schema)
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.url) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

#[cfg(feature = "postgres")]
impl TestDb for PgDb {
    type Conn = diesel::PgConnection;
    const DIALECT: Dialect = Dialect {
        ts: "TIMESTAMP",
        key_text: "TEXT",
    };
    fn conn(&self) -> Self::Conn {
        let mut conn = diesel::PgConnection::establish(&self.url).expect("connect to OCC_PG_URL");
        conn.batch_execute(&format!("SET search_path TO {}", self.schema))
            .expect("select test schema");
        conn
    }
    #[cfg(feature = "r2d2")]
    fn pool(&self, size: u32) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<Self::Conn>> {
        pool(
            &self.url,
            size,
            &format!("SET search_path TO {}", self.schema),
        )
    }
}

/// A connection of diesel's MySQL family, to the server at `OCC_MYSQL_URL`:
/// diesel's MySQL backend, or diesel 2.4's own MariaDB one (feature
/// `mariadb`), which wants its own URL scheme.
#[cfg(feature = "mysql")]
pub trait MysqlFamily: Connection + diesel::r2d2::R2D2Connection + 'static {
    const SCHEME: &'static str;
}

#[cfg(feature = "mysql")]
impl MysqlFamily for diesel::MysqlConnection {
    const SCHEME: &'static str = "mysql";
}

#[cfg(all(feature = "mysql", feature = "mariadb"))]
impl MysqlFamily for diesel::MariadbConnection {
    const SCHEME: &'static str = "mariadb";
}

/// A test's database on the MySQL/MariaDB server, reached with connections
/// `C`.
#[cfg(feature = "mysql")]
pub struct MysqlDb<C: MysqlFamily = diesel::MysqlConnection> {
    server: String,
    database: String,
    conn: std::marker::PhantomData<fn() -> C>,
}

#[cfg(feature = "mysql")]
impl<C: MysqlFamily> MysqlDb<C> {
    pub fn new(test: &str) -> Option<Self> {
        let url = server_url("OCC_MYSQL_URL")?;
        // The test's database replaces the URL's path, and the connection's
        // scheme the URL's.
        let Some(start) = url.find("://") else {
            panic!("OCC_MYSQL_URL is not a mysql:// URL")
        };
        let url = format!("{}{}", C::SCHEME, &url[start..]);
        let start = C::SCHEME.len() + 3;
        let server = match url[start..].find('/') {
            Some(slash) => url[..start + slash].to_owned(),
            None => url.clone(),
        };
        let database = db_name(test);
        let mut conn = C::establish(&url).expect("connect to OCC_MYSQL_URL");
        conn.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database};"
        ))
        .expect("create test database");
        Some(Self {
            server,
            database,
            conn: std::marker::PhantomData,
        })
    }

    /// The URL of the test's database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.database)
    }
}

#[cfg(feature = "mysql")]
impl<C: MysqlFamily> Drop for MysqlDb<C> {
    fn drop(&mut self) {
        if let Ok(mut conn) = C::establish(&self.server) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.database));
        }
    }
}

#[cfg(feature = "mysql")]
impl<C: MysqlFamily> TestDb for MysqlDb<C> {
    type Conn = C;
    const DIALECT: Dialect = Dialect {
        ts: "DATETIME(6)",
        key_text: "VARCHAR(191)",
    };
    fn conn(&self) -> Self::Conn {
        C::establish(&self.url()).expect("connect to the test database")
    }
    #[cfg(feature = "r2d2")]
    fn pool(&self, size: u32) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<Self::Conn>> {
        pool(&self.url(), size, "")
    }
}

/// A table `docs (id, body, version)` whose version a trigger moves on
/// every update, as the guide to models (src/guide/models.md) gives the triggers but counting in tens (so
/// that a version occ made up itself, one more, would show), and three rows
/// at version 1: for connection type `C` of any backend.
#[allow(dead_code)]
pub fn docs_with_version_trigger<C>(_conn: &C) -> &'static str {
    let name = std::any::type_name::<C>();
    if name.contains("Pg") {
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
         CREATE FUNCTION docs_version() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.version := OLD.version + 10; RETURN NEW; END $$;
         CREATE TRIGGER docs_version BEFORE UPDATE ON docs
         FOR EACH ROW EXECUTE FUNCTION docs_version();
         INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    } else if name.contains("Mysql") {
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body VARCHAR(255) NOT NULL, version INTEGER NOT NULL DEFAULT 1);
         CREATE TRIGGER docs_version BEFORE UPDATE ON docs
         FOR EACH ROW SET NEW.version = OLD.version + 10;
         INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    } else {
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
         CREATE TRIGGER docs_version AFTER UPDATE ON docs FOR EACH ROW
         BEGIN UPDATE docs SET version = OLD.version + 10 WHERE id = NEW.id; END;
         INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    }
}

/// Runs `f` with a subscriber that collects every `tracing` event on this
/// thread, one line each (`LEVEL target field=value ..`); `f`'s result and
/// the lines.
#[cfg(feature = "tracing")]
pub fn traced<R>(f: impl FnOnce() -> R) -> (R, String) {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    struct Collect(Arc<Mutex<Vec<String>>>);
    struct Fields(String);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }
    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            let mut fields = Fields(format!("{} {}", meta.level(), meta.target()));
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let events = Arc::new(Mutex::new(Vec::new()));
    let result = tracing::subscriber::with_default(Collect(Arc::clone(&events)), f);
    let lines = events.lock().unwrap().join("\n");
    (result, lines)
}
