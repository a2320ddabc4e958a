use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Nullable<Integer>,
    }
}

#[derive(Queryable, Selectable, Optimistic)]
struct Product {
    id: i32,
    name: String,
    #[occ(version)]
    version: Option<i32>,
}

// One mistake, one error: the calls below add none of their own.
fn rename(conn: &mut SqliteConnection, product: &mut Product) -> Result<(), OccError> {
    product.name.push('!');
    product.update_versioned(conn)?;
    product.reload(conn)?;
    product.delete_versioned(conn)
}

fn main() {}
