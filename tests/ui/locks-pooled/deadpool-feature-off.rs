use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::AsyncPgConnection;
use occ::async_prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
    }
}

async fn quantities(conn: &mut Object<AsyncPgConnection>) -> Result<Vec<i32>, OccError> {
    // A connection from diesel-async's deadpool pool, with occ's `deadpool`
    // feature off: the message names the feature.
    occ::retry_async(conn, &RetryPolicy::default(), async |conn| {
        products::table.select(products::qty).exclusive().load(conn).await
    })
    .await
}

fn main() {
    let _ = quantities;
}
