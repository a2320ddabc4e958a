mod common;
use common::TestDb;
use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Debug, Clone)]
#[diesel(table_name = products)]
struct Product {
    id: i32,
    name: String,
    #[diesel(column_name = qty)]
    quantity: i32,
    #[occ(version)]
    version: i32,
}

per_backend! {
    fn smoke(db) {
        db.exec("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, version INTEGER NOT NULL)");
        let mut c = db.conn();
        diesel::insert_into(products::table).values((products::id.eq(1), products::name.eq("a"), products::qty.eq(5), products::version.eq(0))).execute(&mut c).unwrap();
        let mut p: Product = products::table.find(1).select(Product::as_select()).first(&mut c).unwrap();
        let mut stale = p.clone();
        p.quantity = 4;
        p.update_versioned(&mut c).unwrap();
        assert_eq!(p.version, 1);
        stale.quantity = 3;
        let err = stale.update_versioned(&mut c).unwrap_err();
        println!("{err}");
        assert!(err.is_conflict());
        assert_eq!(stale.version, 0);
        stale.reload(&mut c).unwrap();
        assert_eq!(stale.quantity, 4);
        let v = Product::update_if_version(&mut c, 1, 1, products::name.eq("b")).unwrap();
        assert_eq!(v, 2);
        p.version = 2;
        p.bump_version(&mut c).unwrap();
        p.delete_versioned(&mut c).unwrap();
        let err = p.update_versioned(&mut c).unwrap_err();
        println!("{err}");
        assert!(err.is_not_found());
    }
}
