//! The example service (`examples/http_service.rs`) served on 127.0.0.1 and
//! driven by a real HTTP client: ETags, If-Match, If-None-Match and the
//! status of each outcome, and races of clients that write with the same tag
//! or buy the last items.

#![cfg(all(feature = "axum", feature = "deadpool"))]

mod common;

#[path = "../examples/http_service.rs"]
#[allow(dead_code)]
mod http_service;

use common::nonblocking::AsyncTestDb;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

/// Serves the example's router for a test database; the base URL.
trait Service: AsyncTestDb {
    async fn serve(&self) -> String;
}

async fn listen(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[cfg(feature = "async-sqlite")]
impl Service for common::SqliteDb {
    async fn serve(&self) -> String {
        let pool = http_service::sqlite::pool(&self.async_url(), "PRAGMA busy_timeout = 10000;", 8)
            .unwrap();
        http_service::sqlite::seed(&pool).await.unwrap();
        listen(http_service::sqlite::router(pool)).await
    }
}

#[cfg(all(feature = "async-postgres", feature = "postgres"))]
impl Service for common::PgDb {
    async fn serve(&self) -> String {
        let pool = http_service::postgres::pool(&self.async_url(), "", 8).unwrap();
        http_service::postgres::seed(&pool).await.unwrap();
        listen(http_service::postgres::router(pool)).await
    }
}

#[cfg(all(feature = "async-mysql", feature = "mysql"))]
impl Service for common::MysqlDb {
    async fn serve(&self) -> String {
        let pool = http_service::mysql::pool(&self.async_url(), "", 8).unwrap();
        http_service::mysql::seed(&pool).await.unwrap();
        listen(http_service::mysql::router(pool)).await
    }
}

#[cfg(all(feature = "async-mariadb", feature = "mariadb", feature = "mysql"))]
impl Service for common::MysqlDb<diesel::MariadbConnection> {
    async fn serve(&self) -> String {
        let pool = http_service::mariadb::pool(&self.async_url(), "", 8).unwrap();
        http_service::mariadb::seed(&pool).await.unwrap();
        listen(http_service::mariadb::router(pool)).await
    }
}

fn etag(response: &Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

async fn get(client: &Client, base: &str, id: i32) -> (String, Value) {
    let response = client
        .get(format!("{base}/products/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tag = etag(&response);
    (tag, response.json().await.unwrap())
}

async fn put(
    client: &Client,
    base: &str,
    id: i32,
    if_match: Option<&str>,
    body: Value,
) -> Response {
    let mut request = client.put(format!("{base}/products/{id}")).json(&body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

async fn problem(response: Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "a problem-details body"
    );
    response.json().await.unwrap()
}

per_async_backend! {
    async fn two_clients_with_one_etag_the_second_write_is_refused(db) {
        let base = db.serve().await;
        let (alice, bob) = (Client::new(), Client::new());
        let (tag_a, body) = get(&alice, &base, 1).await;
        let (tag_b, _) = get(&bob, &base, 1).await;
        assert_eq!(tag_a, tag_b);
        assert_eq!(body, json!({"id": 1, "name": "anvil", "stock": 10}));

        let first = put(&alice, &base, 1, Some(&tag_a), json!({"name": "anvil", "stock": 9})).await;
        assert_eq!(first.status(), StatusCode::OK);
        let new_tag = etag(&first);
        assert_ne!(new_tag, tag_a);
        assert_eq!(first.json::<Value>().await.unwrap()["stock"], 9);

        let second = put(&bob, &base, 1, Some(&tag_b), json!({"name": "anvil", "stock": 7})).await;
        assert_eq!(second.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(etag(&second), new_tag, "the 412 carries the current ETag");
        let body = problem(second).await;
        assert_eq!(body["status"], 412);
        assert_eq!(body["current_etag"], new_tag.as_str());
        assert_eq!(get(&bob, &base, 1).await.1["stock"], 9, "the second write changed nothing");

        // A GET with the current tag is 304; with a weak one too (weak
        // comparison); with the old one 200.
        let fresh = alice.get(format!("{base}/products/1")).header("if-none-match", &new_tag).send().await.unwrap();
        assert_eq!(fresh.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(etag(&fresh), new_tag);
        let weak = alice.get(format!("{base}/products/1")).header("if-none-match", format!("W/{new_tag}")).send().await.unwrap();
        assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
        let stale = alice.get(format!("{base}/products/1")).header("if-none-match", &tag_a).send().await.unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
    }

    async fn preconditions_missing_star_weak_and_garbage(db) {
        let base = db.serve().await;
        let client = Client::new();
        let (tag, _) = get(&client, &base, 2).await;

        let missing = put(&client, &base, 2, None, json!({"name": "hammer", "stock": 1})).await;
        assert_eq!(missing.status(), StatusCode::PRECONDITION_REQUIRED);
        assert!(problem(missing).await["detail"].as_str().unwrap().contains("If-Match"));

        let weak = put(&client, &base, 2, Some(&format!("W/{tag}")), json!({"name": "hammer", "stock": 1})).await;
        assert_eq!(weak.status(), StatusCode::PRECONDITION_FAILED, "a weak tag never matches If-Match");
        assert_eq!(etag(&weak), tag);

        for garbage in ["garbage", "\"2", "*, \"2\"", "W/2"] {
            let bad = put(&client, &base, 2, Some(garbage), json!({"name": "hammer", "stock": 1})).await;
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "If-Match: {garbage}");
            assert!(problem(bad).await["detail"].as_str().unwrap().starts_with("malformed if-match header"));
        }
        let not_a_version = put(&client, &base, 2, Some("\"abc\""), json!({"name": "hammer", "stock": 1})).await;
        assert_eq!(not_a_version.status(), StatusCode::PRECONDITION_FAILED);

        let star = put(&client, &base, 2, Some("*"), json!({"name": "hammer", "stock": 3})).await;
        assert_eq!(star.status(), StatusCode::OK, "If-Match: * on an existing row");
        let listed = put(&client, &base, 2, Some(&format!("\"999\", {}", etag(&star))), json!({"name": "hammer", "stock": 4})).await;
        assert_eq!(listed.status(), StatusCode::OK, "a list matches when one of its tags does");
        assert_eq!(get(&client, &base, 2).await.1["stock"], 4);

        let patch = client.patch(format!("{base}/products/2")).header("if-match", etag(&listed)).json(&json!({"stock": 5})).send().await.unwrap();
        assert_eq!(patch.status(), StatusCode::OK);
        assert_eq!(patch.json::<Value>().await.unwrap(), json!({"id": 2, "name": "hammer", "stock": 5}));
    }

    async fn a_deleted_product_is_404_and_star_is_412(db) {
        let base = db.serve().await;
        let client = Client::new();
        let (tag, _) = get(&client, &base, 3).await;
        let stale_delete = client.delete(format!("{base}/products/3")).header("if-match", "\"999\"").send().await.unwrap();
        assert_eq!(stale_delete.status(), StatusCode::PRECONDITION_FAILED);
        let delete = client.delete(format!("{base}/products/3")).header("if-match", &tag).send().await.unwrap();
        assert_eq!(delete.status(), StatusCode::NO_CONTENT);

        let old = put(&client, &base, 3, Some(&tag), json!({"name": "tongs", "stock": 1})).await;
        assert_eq!(old.status(), StatusCode::NOT_FOUND, "a write with the old tag to a deleted product");
        let star = put(&client, &base, 3, Some("*"), json!({"name": "tongs", "stock": 1})).await;
        assert_eq!(star.status(), StatusCode::PRECONDITION_FAILED, "If-Match: * needs the product to exist");
        let again = client.delete(format!("{base}/products/3")).header("if-match", &tag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
        assert_eq!(client.get(format!("{base}/products/3")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    }

    async fn thirty_two_patches_with_one_tag_exactly_one_wins(db) {
        let base = db.serve().await;
        let client = Client::new();
        let (tag, _) = get(&client, &base, 1).await;
        let mut requests = Vec::new();
        for stock in 100..132 {
            let (client, base, tag) = (client.clone(), base.clone(), tag.clone());
            requests.push(tokio::spawn(async move {
                let response = client.patch(format!("{base}/products/1")).header("if-match", &tag).json(&json!({"stock": stock})).send().await.unwrap();
                (response.status(), stock)
            }));
        }
        let mut won = Vec::new();
        for request in requests {
            let (status, stock) = request.await.unwrap();
            match status {
                StatusCode::OK => won.push(stock),
                StatusCode::PRECONDITION_FAILED => {}
                other => panic!("PATCH with stock {stock}: {other}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one PATCH with the tag succeeds: {won:?}");
        assert_eq!(get(&client, &base, 1).await.1["stock"], won[0], "the row holds the winner's write");
    }

    async fn a_guarded_sale_of_more_than_is_left_is_409(db) {
        let base = db.serve().await;
        let client = Client::new();
        let (tag, _) = get(&client, &base, 3).await;
        let stocked = put(&client, &base, 3, Some(&tag), json!({"name": "tongs", "stock": 10})).await;
        assert_eq!(stocked.status(), StatusCode::OK);
        let sell = |n: i32| client.post(format!("{base}/products/3/sell/{n}")).send();
        assert_eq!(sell(3).await.unwrap().status(), StatusCode::NO_CONTENT);
        // The guard does not hold: occ's GuardFailed, as occ::http answers it.
        let refused = sell(8).await.unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        let body = problem(refused).await;
        assert_eq!(body["status"], 409);
        assert_eq!(body["resource"], "products id = 3");
        assert_eq!(body["detail"], "products id = 3 is not in a state that allows this change");
        // The sale moved the version: the ETag read before it is stale.
        let (after, product) = get(&client, &base, 3).await;
        assert_eq!(product["stock"], 7);
        assert_ne!(after, etag(&stocked));
        let missing = client.post(format!("{base}/products/99/sell/1")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    async fn sixty_four_buyers_of_fifty_items(db) {
        let base = db.serve().await;
        let client = Client::new();
        let (tag, _) = get(&client, &base, 2).await;
        let stocked = put(&client, &base, 2, Some(&tag), json!({"name": "hammer", "stock": 50})).await;
        assert_eq!(stocked.status(), StatusCode::OK);
        let mut buyers = Vec::new();
        for _ in 0..64 {
            let (client, base) = (client.clone(), base.clone());
            buyers.push(tokio::spawn(async move {
                let response = client.post(format!("{base}/products/2/purchase")).send().await.unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                (status, body)
            }));
        }
        let (mut sold, mut refused) = (0, 0);
        for buyer in buyers {
            let (status, body) = buyer.await.unwrap();
            match status {
                StatusCode::OK => {
                    sold += 1;
                    assert!(body["stock"].as_i64().unwrap() >= 0, "{body}");
                }
                StatusCode::CONFLICT => {
                    refused += 1;
                    assert!(body["detail"].as_str().unwrap().starts_with("out of stock"), "{body}");
                }
                other => panic!("a purchase: {other} {body}"),
            }
        }
        assert_eq!((sold, refused), (50, 14));
        assert_eq!(get(&client, &base, 2).await.1["stock"], 0);
    }
}

/// A model, spelled as a handler has it.
#[derive(serde::Serialize)]
struct Widget {
    id: i32,
    version: i32,
}

/// The documented call, with the model moved into the body in the same call
/// that reads its version.
fn widget_response(widget: Widget) -> axum::response::Response {
    use axum::response::IntoResponse;
    occ::http::axum::Tagged::new(widget.version, axum::Json(widget)).into_response()
}

#[test]
fn tagged_takes_the_version_and_the_model_in_one_call() {
    let response = widget_response(Widget { id: 1, version: 7 });
    assert_eq!(response.headers()["etag"], "\"7\"");
}

/// `IfMatch<V>` as axum extracts it from a request with `value` in If-Match.
async fn if_match(value: &str) -> occ::http::axum::IfMatch<i32> {
    use axum::extract::FromRequestParts;
    let request = axum::http::Request::builder()
        .uri("/widgets/1")
        .header("if-match", value)
        .body(())
        .unwrap();
    let (mut parts, ()) = request.into_parts();
    occ::http::axum::IfMatch::from_request_parts(&mut parts, &())
        .await
        .unwrap()
}

#[tokio::test]
async fn if_match_expected_covers_star_lists_and_one_tag() {
    use occ::http::Problem;
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let current = |version: Option<i32>| {
        let reads = &reads;
        async move {
            reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, occ::OccError>(version)
        }
    };
    // One strong tag: that version, and the row is not read.
    assert_eq!(
        if_match("\"3\"")
            .await
            .expected(current(Some(5)))
            .await
            .unwrap(),
        3
    );
    assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 0);
    // `*`: the row's version, if there is a row; 412 if there is none.
    assert_eq!(
        if_match("*")
            .await
            .expected(current(Some(5)))
            .await
            .unwrap(),
        5
    );
    assert!(matches!(
        if_match("*").await.expected(current(None)).await,
        Err(Problem::PreconditionFailed { current: None, .. })
    ));
    // A list: the row's version when it is one of them, 412 when not, 404
    // for a missing row.
    assert_eq!(
        if_match("\"4\", \"5\"")
            .await
            .expected(current(Some(5)))
            .await
            .unwrap(),
        5
    );
    assert!(matches!(
        if_match("\"4\", \"6\"")
            .await
            .expected(current(Some(5)))
            .await,
        Err(Problem::PreconditionFailed {
            current: Some(_),
            ..
        })
    ));
    assert!(matches!(
        if_match("\"4\", \"6\"").await.expected(current(None)).await,
        Err(Problem::NotFound { .. })
    ));
    assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 5);
}
