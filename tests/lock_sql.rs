//! The SQL each row-lock builder renders, per backend: PostgreSQL's four
//! strengths, `OF table` in a join (also of a table in a schema), a model's
//! row by key, and MySQL 8's spelling of a shared lock. No server needed.

#![cfg(any(feature = "postgres", feature = "mysql", feature = "mariadb"))]

use occ::prelude::*;

diesel::table! {
    jobs (id) {
        id -> Integer,
        state -> Text,
        owner_id -> Integer,
        version -> Integer,
    }
}

diesel::table! {
    owners (id) {
        id -> Integer,
        name -> Text,
    }
}

diesel::table! {
    sales.orders (id) {
        id -> Integer,
        owner_id -> Integer,
    }
}

diesel::joinable!(jobs -> owners (owner_id));
diesel::joinable!(orders -> owners (owner_id));
diesel::allow_tables_to_appear_in_same_query!(jobs, owners, orders);

#[derive(Queryable, Selectable, Optimistic)]
#[diesel(table_name = jobs)]
#[allow(dead_code)]
struct Job {
    id: i32,
    state: String,
    owner_id: i32,
    #[occ(version)]
    version: i32,
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::Duration;

    use diesel::pg::Pg;

    use super::*;

    #[test]
    fn four_strengths() {
        let q = || jobs::table.find(7).select(jobs::id);
        let base = r#"SELECT "jobs"."id" FROM "jobs" WHERE ("jobs"."id" = $1)"#;
        let binds = " -- binds: [7]";
        assert_eq!(
            q().exclusive().to_sql::<Pg>(),
            format!("{base} FOR UPDATE{binds}")
        );
        assert_eq!(
            q().shared().to_sql::<Pg>(),
            format!("{base} FOR SHARE{binds}")
        );
        assert_eq!(
            q().no_key_exclusive().to_sql::<Pg>(),
            format!("{base} FOR NO KEY UPDATE{binds}")
        );
        assert_eq!(
            q().key_shared().to_sql::<Pg>(),
            format!("{base} FOR KEY SHARE{binds}")
        );
    }

    #[test]
    fn wait_policies() {
        let q = || {
            jobs::table
                .filter(jobs::state.eq("ready"))
                .order(jobs::id)
                .limit(5)
                .select(jobs::id)
        };
        let base = r#"SELECT "jobs"."id" FROM "jobs" WHERE ("jobs"."state" = $1) ORDER BY "jobs"."id" LIMIT $2"#;
        let binds = r#" -- binds: ["ready", 5]"#;
        assert_eq!(
            q().exclusive().nowait().to_sql::<Pg>(),
            format!("{base} FOR UPDATE NOWAIT{binds}")
        );
        assert_eq!(
            q().exclusive().skip_locked().to_sql::<Pg>(),
            format!("{base} FOR UPDATE SKIP LOCKED{binds}")
        );
        assert_eq!(
            q().key_shared().skip_locked().to_sql::<Pg>(),
            format!("{base} FOR KEY SHARE SKIP LOCKED{binds}")
        );
        // A timeout is a setting around the statement, not SQL in it.
        assert_eq!(
            q().shared()
                .timeout(Duration::from_millis(200))
                .to_sql::<Pg>(),
            format!("{base} FOR SHARE{binds}")
        );
    }

    #[test]
    fn of_table_in_a_join() {
        let q = || {
            jobs::table
                .inner_join(owners::table)
                .filter(owners::name.eq("ann"))
                .select((jobs::id, owners::name))
        };
        let base = r#"SELECT "jobs"."id", "owners"."name" FROM ("jobs" INNER JOIN "owners" ON ("jobs"."owner_id" = "owners"."id")) WHERE ("owners"."name" = $1)"#;
        let binds = r#" -- binds: ["ann"]"#;
        assert_eq!(
            q().exclusive().of(jobs::table).to_sql::<Pg>(),
            format!(r#"{base} FOR UPDATE OF "jobs"{binds}"#)
        );
        assert_eq!(
            q().no_key_exclusive()
                .of(owners::table)
                .nowait()
                .to_sql::<Pg>(),
            format!(r#"{base} FOR NO KEY UPDATE OF "owners" NOWAIT{binds}"#)
        );
        assert_eq!(
            q().shared().skip_locked().of(jobs::table).to_sql::<Pg>(),
            format!(r#"{base} FOR SHARE OF "jobs" SKIP LOCKED{binds}"#)
        );
        // OF takes the name as the FROM clause exposes it: PostgreSQL refuses
        // `OF "sales"."orders"`.
        assert_eq!(
            orders::table
                .inner_join(owners::table)
                .select(orders::id)
                .exclusive()
                .of(orders::table)
                .to_sql::<Pg>(),
            r#"SELECT "sales"."orders"."id" FROM ("sales"."orders" INNER JOIN "owners" ON ("sales"."orders"."owner_id" = "owners"."id")) FOR UPDATE OF "orders" -- binds: []"#
        );
        // Without OF, every table of the join is locked.
        assert_eq!(
            q().exclusive().to_sql::<Pg>(),
            format!("{base} FOR UPDATE{binds}")
        );
    }
}

#[cfg(feature = "postgres")]
#[test]
fn a_models_row_by_key() {
    use diesel::pg::Pg;
    assert_eq!(
        Job::lock(7).exclusive().nowait().to_sql::<Pg>(),
        r#"SELECT "jobs"."id", "jobs"."state", "jobs"."owner_id", "jobs"."version" FROM "jobs" WHERE ("jobs"."id" = $1) FOR UPDATE NOWAIT -- binds: [7]"#
    );
}

#[cfg(feature = "mysql")]
mod mysql {
    use std::time::Duration;

    use diesel::mysql::Mysql;

    use super::*;

    #[test]
    fn exclusive_and_wait_policies() {
        let q = || jobs::table.find(7).select(jobs::id);
        {
            assert_eq!(
                q().exclusive().to_sql::<Mysql>(),
                "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`id` = ?) FOR UPDATE -- binds: [7]"
            );
            assert_eq!(
                q().exclusive().nowait().to_sql::<Mysql>(),
                "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`id` = ?) FOR UPDATE NOWAIT -- binds: [7]"
            );
            assert_eq!(
                q().exclusive().skip_locked().to_sql::<Mysql>(),
                "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`id` = ?) FOR UPDATE SKIP LOCKED -- binds: [7]"
            );
            assert_eq!(
                q().exclusive()
                    .timeout(Duration::from_millis(1500))
                    .to_sql::<Mysql>(),
                "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`id` = ?) FOR UPDATE -- binds: [7]"
            );
        }
    }

    #[test]
    fn shared_is_spelled_per_dialect() {
        let q = || {
            jobs::table
                .filter(jobs::state.eq("ready"))
                .order(jobs::id)
                .limit(5)
                .select(jobs::id)
        };
        let base = "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`state` = ?) ORDER BY `jobs`.`id` LIMIT ?";
        let binds = r#" -- binds: ["ready", 5]"#;
        // MySQL 8's spelling until this process has locked rows on a MariaDB
        // server (tests/locks.rs checks that case against the server).
        assert_eq!(
            q().shared().to_sql::<Mysql>(),
            format!("{base} FOR SHARE{binds}")
        );
        assert_eq!(
            q().shared().nowait().to_sql::<Mysql>(),
            format!("{base} FOR SHARE NOWAIT{binds}")
        );
        assert_eq!(
            q().shared().skip_locked().to_sql::<Mysql>(),
            format!("{base} FOR SHARE SKIP LOCKED{binds}")
        );
    }

    #[test]
    fn a_join_locks_every_table() {
        let q = jobs::table
            .inner_join(owners::table)
            .filter(owners::name.eq("ann"))
            .select((jobs::id, owners::name))
            .exclusive();
        assert_eq!(
            q.to_sql::<Mysql>(),
            "SELECT `jobs`.`id`, `owners`.`name` FROM (`jobs` INNER JOIN `owners` ON (`jobs`.`owner_id` = `owners`.`id`)) \
             WHERE (`owners`.`name` = ?) FOR UPDATE -- binds: [\"ann\"]"
        );
    }
}

/// diesel 2.4's own MariaDB backend: one dialect, MariaDB's.
#[cfg(feature = "mariadb")]
mod mariadb {
    use diesel::mariadb::Mariadb;

    use super::*;

    #[test]
    fn shared_is_mariadbs_spelling_and_exclusive_is_for_update() {
        let q = || jobs::table.find(7).select(jobs::id);
        let base = "SELECT `jobs`.`id` FROM `jobs` WHERE (`jobs`.`id` = ?)";
        let binds = " -- binds: [7]";
        assert_eq!(
            q().shared().to_sql::<Mariadb>(),
            format!("{base} LOCK IN SHARE MODE{binds}")
        );
        assert_eq!(
            q().shared().skip_locked().to_sql::<Mariadb>(),
            format!("{base} LOCK IN SHARE MODE SKIP LOCKED{binds}")
        );
        assert_eq!(
            q().exclusive().nowait().to_sql::<Mariadb>(),
            format!("{base} FOR UPDATE NOWAIT{binds}")
        );
    }
}
