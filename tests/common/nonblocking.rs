//! diesel-async connections and pools to a test's database, and a macro that
//! runs one async test body on every backend with an async connection.

#[cfg(any(feature = "deadpool", feature = "bb8"))]
use diesel::ConnectionError;
#[cfg(any(feature = "deadpool", feature = "bb8"))]
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

use super::TestDb;

/// One text column `v`.
#[derive(diesel::QueryableByName, Debug)]
pub struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub v: String,
}

/// Declares each async test body once and runs it on a multi-thread tokio
/// runtime on every backend with an async connection: modules `sqlite`,
/// `postgres` and `mysql`. In a body, `$db` is the test's database:
/// `$db.exec(..)` runs DDL, `$db.connect().await` opens a connection,
/// `$db.deadpool(n)` and `$db.bb8(n).await` build pools.
#[macro_export]
macro_rules! per_async_backend {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        #[cfg(feature = "async-sqlite")]
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let $db = $crate::common::SqliteDb::new(concat!(module_path!(), "::", stringify!($name)));
                    $body
                }
            )*
        }
        $crate::per_async_server! { $(async fn $name($db) $body)* }
    };
}

/// Like [`per_async_backend!`], for what only the servers can do (row
/// locks): modules `postgres` and `mysql`.
#[macro_export]
macro_rules! per_async_server {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        #[cfg(all(feature = "async-postgres", feature = "postgres"))]
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some($db) = $crate::common::PgDb::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
        #[cfg(all(feature = "async-mysql", feature = "mysql"))]
        mod mysql {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some($db) = <$crate::common::MysqlDb>::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
        #[cfg(all(feature = "async-mariadb", feature = "mariadb", feature = "mysql"))]
        mod mariadb {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some($db) = $crate::common::MysqlDb::<diesel::MariadbConnection>::new(concat!(module_path!(), "::", stringify!($name))) else { return };
                    $body
                }
            )*
        }
    };
}

/// A test database reached through diesel-async.
pub trait AsyncTestDb: TestDb {
    /// The async connection type.
    type Async: AsyncConnection + 'static;

    /// Where the async connection connects to.
    fn async_url(&self) -> String;

    /// What each new connection runs first.
    fn async_setup(&self) -> &'static str {
        ""
    }

    /// Reads, as text in column `v`, whether the connection is inside a
    /// transaction on the server (`"true"` / `"false"`), or the
    /// transaction's start time (see [`in_transaction`]); servers only.
    const IN_TRANSACTION: &'static str = "";

    /// Reads, as text in column `v`, the session's lock wait timeout;
    /// servers only.
    const LOCK_TIMEOUT: &'static str = "";

    /// A new async connection to this test's database.
    async fn connect(&self) -> Self::Async {
        let mut conn = Self::Async::establish(&self.async_url())
            .await
            .expect("open an async connection");
        let setup = self.async_setup();
        if !setup.is_empty() {
            conn.batch_execute(setup).await.expect("connection setup");
        }
        conn
    }
}

/// Pools of a test database's async connections, set up like
/// [`AsyncTestDb::connect`]'s.
macro_rules! pools {
    ($db:ty) => {
        impl $db {
            #[cfg(any(feature = "deadpool", feature = "bb8"))]
            fn manager(&self) -> AsyncDieselConnectionManager<<Self as AsyncTestDb>::Async> {
                type Conn = <$db as AsyncTestDb>::Async;
                let setup = self.async_setup();
                let mut config = ManagerConfig::default();
                config.custom_setup = Box::new(move |url| {
                    Box::pin(async move {
                        let mut conn = Conn::establish(url).await?;
                        if !setup.is_empty() {
                            conn.batch_execute(setup)
                                .await
                                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                        }
                        Ok(conn)
                    })
                });
                AsyncDieselConnectionManager::new_with_config(self.async_url(), config)
            }

            /// A deadpool pool of `size` connections.
            #[cfg(feature = "deadpool")]
            pub fn deadpool(
                &self,
                size: usize,
            ) -> diesel_async::pooled_connection::deadpool::Pool<<Self as AsyncTestDb>::Async> {
                diesel_async::pooled_connection::deadpool::Pool::builder(self.manager())
                    .max_size(size)
                    .build()
                    .expect("build the deadpool pool")
            }

            /// A bb8 pool of `size` connections.
            #[cfg(feature = "bb8")]
            pub async fn bb8(
                &self,
                size: u32,
            ) -> diesel_async::pooled_connection::bb8::Pool<<Self as AsyncTestDb>::Async> {
                diesel_async::pooled_connection::bb8::Pool::builder()
                    .max_size(size)
                    .build(self.manager())
                    .await
                    .expect("build the bb8 pool")
            }
        }
    };
}

#[cfg(feature = "async-sqlite")]
impl AsyncTestDb for super::SqliteDb {
    type Async =
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

    fn async_url(&self) -> String {
        self.path().to_owned()
    }

    fn async_setup(&self) -> &'static str {
        super::SQLITE_PRAGMAS
    }
}

#[cfg(feature = "async-sqlite")]
pools!(super::SqliteDb);

#[cfg(all(feature = "async-postgres", feature = "postgres"))]
impl AsyncTestDb for super::PgDb {
    type Async = diesel_async::AsyncPgConnection;

    // The test's schema first on the search path of every connection.
    fn async_url(&self) -> String {
        let (url, schema) = self.parts();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    }

    // now() stands still inside a transaction: read twice, it differs only
    // when each read is a transaction of its own.
    const IN_TRANSACTION: &'static str = "SELECT now()::text AS v";
    const LOCK_TIMEOUT: &'static str = "SELECT current_setting('lock_timeout') AS v";
}

#[cfg(all(feature = "async-postgres", feature = "postgres"))]
pools!(super::PgDb);

#[cfg(all(feature = "async-mysql", feature = "mysql"))]
impl AsyncTestDb for super::MysqlDb {
    type Async = diesel_async::AsyncMysqlConnection;

    fn async_url(&self) -> String {
        self.url()
    }

    const IN_TRANSACTION: &'static str = MYSQL_IN_TRANSACTION;
    const LOCK_TIMEOUT: &'static str = MYSQL_LOCK_TIMEOUT;
}

#[cfg(all(feature = "async-mysql", feature = "mysql"))]
pools!(super::MysqlDb);

#[cfg(all(feature = "async-mariadb", feature = "mariadb", feature = "mysql"))]
impl AsyncTestDb for super::MysqlDb<diesel::MariadbConnection> {
    type Async = diesel_async::AsyncMariadbConnection;

    fn async_url(&self) -> String {
        self.url()
    }

    const IN_TRANSACTION: &'static str = MYSQL_IN_TRANSACTION;
    const LOCK_TIMEOUT: &'static str = MYSQL_LOCK_TIMEOUT;
}

#[cfg(all(feature = "async-mariadb", feature = "mariadb", feature = "mysql"))]
pools!(super::MysqlDb<diesel::MariadbConnection>);

#[cfg(any(feature = "async-mysql", feature = "async-mariadb"))]
const MYSQL_IN_TRANSACTION: &str = "SELECT IF(@@in_transaction = 1, 'true', 'false') AS v";
#[cfg(any(feature = "async-mysql", feature = "async-mariadb"))]
const MYSQL_LOCK_TIMEOUT: &str = "SELECT CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR) AS v";

/// Runs one of [`AsyncTestDb`]'s text queries on `conn`.
pub async fn read<C>(conn: &mut C, sql: &'static str) -> String
where
    C: AsyncConnection,
    diesel::query_builder::SqlQuery: diesel_async::methods::LoadQuery<'static, C, Text>,
{
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Text>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

/// Whether `conn` is inside a transaction on the server of test database `D`.
pub async fn in_transaction<D, C>(conn: &mut C) -> bool
where
    D: AsyncTestDb,
    C: AsyncConnection,
    diesel::query_builder::SqlQuery: diesel_async::methods::LoadQuery<'static, C, Text>,
{
    let first = read(conn, D::IN_TRANSACTION).await;
    match first.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            read(conn, D::IN_TRANSACTION).await == first
        }
    }
}
