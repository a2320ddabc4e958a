//! An inventory REST service whose writes are HTTP conditional requests:
//! every response carries the product's version as its `ETag`, and every
//! write must send it back in `If-Match` (RFC 9110 section 13.1).
//!
//! - `GET /products/{id}`: the product, with `ETag`; `304` when
//!   `If-None-Match` holds the current tag.
//! - `PUT /products/{id}` (`{"name": .., "stock": ..}`) and `PATCH
//!   /products/{id}` (any of the two): need `If-Match`; the write checks the
//!   tag in its `UPDATE` (`update_if_version`). `428` without it, `412` with
//!   the current `ETag` when it is stale, `400` when it is malformed.
//! - `DELETE /products/{id}`: needs `If-Match`; a versioned delete, `204`.
//!   A write to a deleted product is `404` (RFC 9110 section 13.2.2: the
//!   error the request meets without its precondition wins), except
//!   `If-Match: *`, which says "if it exists": `412`.
//! - `POST /products/{id}/purchase`: takes one from stock with `modify` (occ
//!   reads the row, the handler refuses at zero, occ writes it versioned and
//!   tries again on a conflict), no precondition; the product with its new
//!   `ETag`, or the service's own `409` "out of stock".
//! - `POST /products/{id}/sell/{quantity}`: takes `quantity` from stock with
//!   one guarded update (`update_where`: `stock >= quantity`), no read and
//!   no precondition; `204`, or occ's `409` when there are fewer left.
//!
//! On an empty database it creates products 1, 2 and 3. It listens on
//! 127.0.0.1 (port `PORT`, default 3000):
//!
//! ```text
//! cargo run --features axum,async-sqlite,deadpool --example http_service
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --features axum,async-postgres,deadpool --example http_service
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test \
//!     cargo run --features axum,async-mysql,deadpool --example http_service
//! ```

use std::error::Error;
use std::process::ExitCode;

use axum::routing::{get, post};
use axum::Router;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use occ::async_prelude::*;
use occ::http::axum::{IfMatch, IfNoneMatch, Tagged};
use occ::http::Problem;
use serde::{Deserialize, Serialize};

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
pub struct Product {
    id: i32,
    name: String,
    stock: i32,
    #[occ(version)]
    version: i32,
}

/// Why a purchase failed: the service's own reasons, which end
/// `occ::retry_async` at once, or occ's, which it may retry.
#[derive(Debug)]
pub enum PurchaseError {
    OutOfStock,
    Occ(OccError),
}

impl From<OccError> for PurchaseError {
    fn from(error: OccError) -> Self {
        Self::Occ(error)
    }
}

impl occ::AsOccError for PurchaseError {
    fn as_occ_error(&self) -> Option<&OccError> {
        match self {
            Self::Occ(error) => Some(error),
            Self::OutOfStock => None,
        }
    }
}

/// A product as the API shows it: the version travels in `ETag`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProductJson {
    pub id: i32,
    pub name: String,
    pub stock: i32,
}

impl From<Product> for ProductJson {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            name: p.name,
            stock: p.stock,
        }
    }
}

/// The body of a PUT: every field (an `id`, if sent, must be the path's).
#[derive(Deserialize, Debug)]
pub struct Replace {
    id: Option<i32>,
    name: String,
    stock: i32,
}

/// The body of a PATCH: any of the fields.
#[derive(Deserialize, AsChangeset, Debug, Default)]
#[diesel(table_name = products)]
pub struct Patch {
    name: Option<String>,
    stock: Option<i32>,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS products (\
     id INTEGER PRIMARY KEY, \
     name VARCHAR(64) NOT NULL, \
     stock INTEGER NOT NULL, \
     version INTEGER NOT NULL)";

type BoxError = Box<dyn Error + Send + Sync>;

/// A 400 for a body that contradicts the path.
fn bad_request(detail: &str) -> axum::response::Response {
    problem(axum::http::StatusCode::BAD_REQUEST, detail)
}

/// A problem-details response of the service's own (RFC 9457).
fn problem(status: axum::http::StatusCode, detail: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The service on one kind of connection; the handlers are the same diesel
/// and occ code on each, so a macro writes them once per connection type.
macro_rules! service {
    ($conn:ty) => {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::response::{IntoResponse, Response};
        use axum::Json;

        use super::*;

        pub type Conn = $conn;

        /// A pool of `size` connections that each run `setup` first.
        pub fn pool(url: &str, setup: &'static str, size: usize) -> Result<Pool<Conn>, BoxError> {
            let mut config = diesel_async::pooled_connection::ManagerConfig::default();
            config.custom_setup = Box::new(move |url| {
                Box::pin(async move {
                    let mut conn = <Conn as AsyncConnection>::establish(url).await?;
                    if !setup.is_empty() {
                        diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, setup)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    }
                    Ok(conn)
                })
            });
            let manager = AsyncDieselConnectionManager::new_with_config(url, config);
            Ok(Pool::builder(manager).max_size(size).build()?)
        }

        /// Creates the table, and products 1, 2 and 3 if it is empty.
        pub async fn seed(pool: &Pool<Conn>) -> Result<(), BoxError> {
            let mut conn = pool.get().await?;
            diesel::sql_query(CREATE_TABLE).execute(&mut conn).await?;
            let count: i64 = products::table.count().get_result(&mut conn).await?;
            if count == 0 {
                for (id, name) in [(1, "anvil"), (2, "hammer"), (3, "tongs")] {
                    diesel::insert_into(products::table)
                        .values((
                            products::id.eq(id),
                            products::name.eq(name),
                            products::stock.eq(10),
                            products::version.eq(1),
                        ))
                        .execute(&mut conn)
                        .await?;
                }
            }
            Ok(())
        }

        pub fn router(pool: Pool<Conn>) -> axum::Router {
            Router::new()
                .route(
                    "/products/{id}",
                    get(read).put(replace).patch(patch).delete(delete),
                )
                .route("/products/{id}/purchase", post(purchase))
                .route("/products/{id}/sell/{quantity}", post(sell))
                .with_state(pool)
        }

        async fn connection(
            pool: &Pool<Conn>,
        ) -> Result<diesel_async::pooled_connection::deadpool::Object<Conn>, Response> {
            pool.get().await.map_err(|_| {
                Problem::Unavailable {
                    retry_after: std::time::Duration::from_secs(1),
                }
                .into_response()
            })
        }

        async fn find(conn: &mut Conn, id: i32) -> Result<Option<Product>, OccError> {
            Ok(products::table
                .find(id)
                .select(Product::as_select())
                .first(conn)
                .await
                .optional()?)
        }

        fn missing(id: i32) -> Response {
            Problem::NotFound {
                resource: format!("/products/{id}"),
            }
            .into_response()
        }

        /// The product, with its `ETag`.
        fn tagged(product: Product) -> Response {
            Tagged::new(product.version, Json(ProductJson::from(product))).into_response()
        }

        async fn read(
            State(pool): State<Pool<Conn>>,
            Path(id): Path<i32>,
            if_none_match: IfNoneMatch,
        ) -> Result<Response, Response> {
            let mut conn = connection(&pool).await?;
            let product = find(&mut conn, id)
                .await
                .map_err(IntoResponse::into_response)?;
            let product = product.ok_or_else(|| missing(id))?;
            if_none_match
                .check(&product.version)
                .map_err(IntoResponse::into_response)?;
            Ok(tagged(product))
        }

        /// The version the write must find: the one tag sent, checked by
        /// the statement itself; or, for `*`, a list or a weak tag, the
        /// row's version after checking the condition against it (the row
        /// is read only then).
        async fn expected(
            conn: &mut Conn,
            id: i32,
            if_match: &IfMatch<i32>,
        ) -> Result<i32, Response> {
            let current = async { Ok::<_, OccError>(find(conn, id).await?.map(|p| p.version)) };
            if_match
                .expected(current)
                .await
                .map_err(IntoResponse::into_response)
        }

        /// After a write: the row as it is now, with its `ETag`.
        async fn written(conn: &mut Conn, id: i32) -> Result<Response, Response> {
            let product = find(conn, id).await.map_err(IntoResponse::into_response)?;
            Ok(tagged(product.ok_or_else(|| missing(id))?))
        }

        async fn replace(
            State(pool): State<Pool<Conn>>,
            Path(id): Path<i32>,
            if_match: IfMatch<i32>,
            Json(body): Json<Replace>,
        ) -> Result<Response, Response> {
            if body.id.is_some_and(|body_id| body_id != id) {
                return Err(bad_request("the body's id is not the path's"));
            }
            let mut conn = connection(&pool).await?;
            let expected = expected(&mut conn, id, &if_match).await?;
            Product::update_if_version(
                &mut conn,
                id,
                expected,
                (products::name.eq(body.name), products::stock.eq(body.stock)),
            )
            .await
            .map_err(IntoResponse::into_response)?;
            written(&mut conn, id).await
        }

        async fn patch(
            State(pool): State<Pool<Conn>>,
            Path(id): Path<i32>,
            if_match: IfMatch<i32>,
            Json(body): Json<Patch>,
        ) -> Result<Response, Response> {
            let mut conn = connection(&pool).await?;
            let expected = expected(&mut conn, id, &if_match).await?;
            Product::update_if_version(&mut conn, id, expected, body)
                .await
                .map_err(IntoResponse::into_response)?;
            written(&mut conn, id).await
        }

        async fn delete(
            State(pool): State<Pool<Conn>>,
            Path(id): Path<i32>,
            if_match: IfMatch<i32>,
        ) -> Result<Response, Response> {
            let mut conn = connection(&pool).await?;
            let mut product = find(&mut conn, id)
                .await
                .map_err(IntoResponse::into_response)?;
            let expected = match if_match.version() {
                Some(version) if product.is_some() => version,
                _ => if_match
                    .check(product.as_ref().map(|p| &p.version))
                    .map_err(IntoResponse::into_response)?,
            };
            let Some(product) = product.as_mut() else {
                return Err(missing(id));
            };
            // The delete's own WHERE checks the version the client sent.
            product.version = expected;
            product
                .delete_versioned(&mut conn)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }

        async fn purchase(
            State(pool): State<Pool<Conn>>,
            Path(id): Path<i32>,
        ) -> Result<Response, Response> {
            let mut conn = connection(&pool).await?;
            let policy = occ::ModifyPolicy::default().retry(
                RetryPolicy::default()
                    .max_attempts(200)
                    .initial_backoff(std::time::Duration::from_millis(1))
                    .max_backoff(std::time::Duration::from_millis(20)),
            );
            let bought = Product::modify_with(&mut conn, id, &policy, |product| {
                if product.stock <= 0 {
                    return Err(PurchaseError::OutOfStock);
                }
                product.stock -= 1;
                Ok(())
            })
            .await;
            match bought {
                Ok(product) => Ok(tagged(product)),
                Err(PurchaseError::Occ(OccError::NotFound { .. })) => Err(missing(id)),
                Err(PurchaseError::OutOfStock) => Err(problem(
                    StatusCode::CONFLICT,
                    &format!("out of stock: /products/{id} has none left"),
                )),
                Err(PurchaseError::Occ(error)) => Err(error.into_response()),
            }
        }

        async fn sell(
            State(pool): State<Pool<Conn>>,
            Path((id, quantity)): Path<(i32, i32)>,
        ) -> Result<Response, Response> {
            use products::stock;
            let mut conn = connection(&pool).await?;
            // One statement: where there are enough, take them; a failed
            // guard is occ's `GuardFailed`, a 409 of `occ::http`.
            match Product::update_where(
                &mut conn,
                id,
                stock.ge(quantity),
                stock.eq(stock - quantity),
            )
            .await
            {
                Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
                Err(OccError::NotFound { .. }) => Err(missing(id)),
                Err(error) => Err(error.into_response()),
            }
        }
    };
}

#[cfg(feature = "async-sqlite")]
pub mod sqlite {
    service!(diesel_async::sync_connection_wrapper::SyncConnectionWrapper<SqliteConnection>);
}

#[cfg(feature = "async-postgres")]
pub mod postgres {
    service!(diesel_async::AsyncPgConnection);
}

#[cfg(feature = "async-mysql")]
pub mod mysql {
    service!(diesel_async::AsyncMysqlConnection);
}

/// diesel 2.4's own MariaDB backend (`mariadb://` URLs).
#[cfg(feature = "async-mariadb")]
pub mod mariadb {
    service!(diesel_async::AsyncMariadbConnection);
}

/// The router for `url`: SQLite when `None` (a file in the temp directory).
pub async fn app(url: Option<&str>) -> Result<Router, BoxError> {
    match url {
        #[cfg(feature = "async-sqlite")]
        None => {
            let path = std::env::temp_dir().join("occ_http_service.db");
            let path = path
                .to_str()
                .ok_or("temp dir path is not UTF-8")?
                .to_owned();
            let pool = sqlite::pool(
                &path,
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;",
                8,
            )?;
            sqlite::seed(&pool).await?;
            Ok(sqlite::router(pool))
        }
        #[cfg(feature = "async-postgres")]
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let pool = postgres::pool(url, "", 8)?;
            postgres::seed(&pool).await?;
            Ok(postgres::router(pool))
        }
        #[cfg(feature = "async-mysql")]
        Some(url) if url.starts_with("mysql://") => {
            let pool = mysql::pool(url, "", 8)?;
            mysql::seed(&pool).await?;
            Ok(mysql::router(pool))
        }
        #[cfg(feature = "async-mariadb")]
        Some(url) if url.starts_with("mariadb://") => {
            let pool = mariadb::pool(url, "", 8)?;
            mariadb::seed(&pool).await?;
            Ok(mariadb::router(pool))
        }
        #[cfg(not(feature = "async-sqlite"))]
        None => Err("add `--features async-sqlite` for SQLite, or set DATABASE_URL".into()),
        Some(url) => Err(format!(
            "DATABASE_URL={url}: expected postgres://..., mysql://... or mariadb://... with the \
             matching feature (async-postgres, async-mysql, async-mariadb), or leave it unset \
             for SQLite"
        )
        .into()),
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000u16);
    let serve = async {
        let app = app(url.as_deref()).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok::<_, BoxError>(())
    };
    match serve.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
