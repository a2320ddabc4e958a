// A model that borrows its text: it derives Optimistic alone (Queryable cannot
// hand out borrowed rows), names its table through diesel's attribute, and
// writes the borrowed value.
use occ::prelude::*;

diesel::table! {
    notes (id) {
        id -> Integer,
        body -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
#[diesel(table_name = notes)]
struct NoteEdit<'a> {
    id: i32,
    body: &'a str,
    #[occ(version)]
    version: i32,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO notes VALUES (1, 'draft', 0)")
        .execute(&mut conn)
        .unwrap();

    let text = String::from("final");
    let mut edit = NoteEdit {
        id: 1,
        body: &text,
        version: 0,
    };
    edit.update_versioned(&mut conn).unwrap();
    assert_eq!(edit.version, 1);
    let row: (String, i32) = notes::table
        .find(1)
        .select((notes::body, notes::version))
        .first(&mut conn)
        .unwrap();
    assert_eq!(row, ("final".to_owned(), 1));

    let mut stale = NoteEdit {
        id: 1,
        body: "lost",
        version: 0,
    };
    let err = stale.update_versioned(&mut conn).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(stale.version, 0);
}
