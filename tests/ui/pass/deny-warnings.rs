//! A model derived under the strictest lints: the generated code adds no
//! warning, no needless path and no undocumented public item.
#![deny(warnings, unused_qualifications, missing_docs)]

use occ::prelude::*;

/// The schema.
pub mod schema {
    diesel::table! {
        /// Stock of each product.
        products (id) {
            /// Key.
            id -> Integer,
            /// Name shown to customers.
            name -> Text,
            /// Units in stock.
            qty -> Integer,
            /// Moved forward by every versioned write.
            version -> Integer,
        }
    }
}

use schema::products;

/// One product row.
#[derive(Queryable, Selectable, Identifiable, Optimistic, Debug, Clone, PartialEq)]
#[diesel(table_name = products)]
pub struct Product {
    /// Key.
    pub id: i32,
    /// Name shown to customers.
    pub name: String,
    /// Units in stock.
    pub qty: i32,
    /// The row's version.
    #[occ(version)]
    pub version: i32,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         qty INTEGER NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO products VALUES (1, 'pen', 5, 0)")
        .execute(&mut conn)
        .unwrap();

    let mut product: Product = products::table
        .find(1)
        .select(Product::as_select())
        .first(&mut conn)
        .unwrap();
    let mut stale = product.clone();
    product.qty = 4;
    product.update_versioned(&mut conn).unwrap();
    stale.qty = 3;
    assert!(stale.update_versioned(&mut conn).unwrap_err().is_conflict());
    stale.reload(&mut conn).unwrap();
    assert_eq!(stale, product);
    product.delete_versioned(&mut conn).unwrap();
    assert!(stale
        .update_versioned(&mut conn)
        .unwrap_err()
        .is_not_found());
}
