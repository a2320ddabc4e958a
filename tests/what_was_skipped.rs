//! Says what this `cargo test` left out and how to run it: one line per
//! server whose tests were skipped (a feature off or a URL unset) and per
//! suite a feature set leaves out. (The compile-error suite says so itself:
//! it is an ignored test, `--include-ignored` runs it.) A
//! binary without the test harness, so that its lines reach the terminal;
//! cargo runs it after the other suites. Under `OCC_REQUIRE_SERVERS=1` (as
//! CI sets it) a skipped server fails instead.

use std::process::ExitCode;

/// A server: its feature, the variable with its URL, an example URL.
struct Server {
    name: &'static str,
    built: bool,
    feature: &'static str,
    var: &'static str,
    example: &'static str,
}

/// A suite compiled only with some features.
struct Suite {
    file: &'static str,
    what: &'static str,
    built: bool,
    features: &'static str,
}

fn main() -> ExitCode {
    let servers = [
        Server {
            name: "PostgreSQL",
            built: cfg!(feature = "postgres"),
            feature: "postgres",
            var: "OCC_PG_URL",
            example: "postgres://postgres@127.0.0.1:5432/test",
        },
        Server {
            name: "MySQL/MariaDB",
            built: cfg!(feature = "mysql"),
            feature: "mysql",
            var: "OCC_MYSQL_URL",
            example: "mysql://root@127.0.0.1:3306/test",
        },
        Server {
            name: "diesel MariaDB-backend",
            built: cfg!(all(feature = "mysql", feature = "mariadb")),
            feature: "mysql,mariadb",
            var: "OCC_MYSQL_URL",
            example: "mysql://root@127.0.0.1:3306/test",
        },
        Server {
            name: "Galera cluster",
            built: cfg!(feature = "mysql"),
            feature: "mysql",
            var: "OCC_GALERA_URLS",
            example: "\"$(scripts/galera urls)\" after scripts/galera up",
        },
        Server {
            name: "PostgreSQL replica",
            built: cfg!(all(feature = "postgres", feature = "r2d2")),
            feature: "postgres,r2d2",
            var: "OCC_PG_REPLICA_URLS",
            example: "\"$(scripts/pg-ha urls | cut -d' ' -f1,2)\" after scripts/pg-ha up",
        },
        Server {
            name: "MariaDB replica",
            built: cfg!(all(feature = "mysql", feature = "r2d2")),
            feature: "mysql,r2d2",
            var: "OCC_MYSQL_REPLICA_URLS",
            example: "\"$(scripts/mariadb-replica urls)\" after scripts/mariadb-replica up",
        },
        Server {
            name: "PostgreSQL failover",
            built: cfg!(feature = "postgres"),
            feature: "postgres",
            var: "OCC_PG_FAILOVER",
            example: "1 (the test starts its own clusters with scripts/pg-ha)",
        },
    ];
    let suites = [
        Suite {
            file: "tests/locks.rs, tests/lock_sql.rs",
            what: "row locks",
            built: cfg!(any(feature = "postgres", feature = "mysql")),
            features: "postgres or mysql",
        },
        Suite {
            file: "tests/async.rs",
            what: "the async API and its pools",
            built: cfg!(all(
                feature = "async",
                feature = "deadpool",
                feature = "bb8"
            )),
            features: "async-sqlite,deadpool,bb8",
        },
        Suite {
            file: "tests/http.rs",
            what: "the HTTP service",
            built: cfg!(all(feature = "axum", feature = "deadpool")),
            features: "axum,async-sqlite,deadpool",
        },
        Suite {
            file: "tests/pooled.rs",
            what: "r2d2 pools",
            built: cfg!(feature = "r2d2"),
            features: "r2d2",
        },
        Suite {
            file: "tests/version_types.rs",
            what: "timestamp and UUID versions",
            built: cfg!(all(feature = "chrono", feature = "time", feature = "uuid")),
            features: "chrono,time,uuid",
        },
    ];
    let require = std::env::var("OCC_REQUIRE_SERVERS").as_deref() == Ok("1");
    let mut lines = Vec::new();
    let mut missing = false;
    for server in &servers {
        let set = std::env::var(server.var).is_ok_and(|url| !url.is_empty());
        if !server.built {
            lines.push(format!(
                "the {} tests are not built: add --features {} (or --all-features) and set {}",
                server.name, server.feature, server.var
            ));
        } else if !set {
            missing = true;
            lines.push(format!(
                "the {} tests were skipped: set {} to run them, e.g. {}={}",
                server.name, server.var, server.var, server.example
            ));
        }
    }
    for suite in suites.iter().filter(|suite| !suite.built) {
        lines.push(format!(
            "the tests of {} ({}) are not built: add --features {} (or --all-features)",
            suite.what, suite.file, suite.features
        ));
    }
    if lines.is_empty() {
        println!("\nnothing skipped: every suite ran on every backend");
        return ExitCode::SUCCESS;
    }
    println!("\nskipped by this cargo test:");
    for line in &lines {
        println!("  - {line}");
    }
    if require && missing {
        eprintln!("OCC_REQUIRE_SERVERS=1 forbids skipping a server");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
