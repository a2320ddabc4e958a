//! What `#[derive(Optimistic)]` adds to a build: a generated crate of 100
//! diesel models (a `table!` and a struct deriving `Queryable`, `Selectable`,
//! `Insertable`, `AsChangeset` and `Identifiable` each), built with and
//! without `#[derive(Optimistic)]` on every model, the two builds taking
//! turns. Only the generated crate is rebuilt and timed; its dependencies
//! are built once first. Prints the median of each and the difference.
//!
//! ```text
//! cargo bench --bench compile_time
//! ```
//!
//! `OCC_COMPILE_RUNS` sets how many builds of each kind (default 5). The
//! crate and its target directory are under `target/compile-time`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MODELS: usize = 100;

fn models() -> String {
    let mut src = String::from("#![allow(dead_code)]\nuse diesel::prelude::*;\n");
    src.push_str("#[cfg(feature = \"occ\")]\nuse occ::Optimistic;\n");
    for i in 0..MODELS {
        let _ = write!(
            src,
            r#"
diesel::table! {{
    items_{i} (id) {{
        id -> Integer,
        name -> Text,
        qty -> Integer,
        price -> BigInt,
        note -> Nullable<Text>,
        version -> Integer,
    }}
}}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Identifiable, Debug, Clone)]
#[cfg_attr(feature = "occ", derive(Optimistic))]
#[diesel(table_name = items_{i})]
pub struct Item{i} {{
    pub id: i32,
    pub name: String,
    pub qty: i32,
    pub price: i64,
    pub note: Option<String>,
    #[cfg_attr(feature = "occ", occ(version))]
    pub version: i32,
}}
"#
        );
    }
    src
}

fn write_crate(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).expect("create the crate's directory");
    let occ = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "occ-compile-time"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
diesel = {{ version = "2.3", default-features = false, features = ["sqlite", "returning_clauses_for_sqlite_3_35"] }}
occ = {{ path = "{occ}", optional = true }}

[features]
occ = ["dep:occ"]

[workspace]
"#
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), models()).expect("write src/lib.rs");
}

/// Builds the crate once (after touching its source); the build's time.
fn build(dir: &Path, occ: bool) -> Duration {
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).expect("read src/lib.rs");
    std::fs::write(&lib, text).expect("touch src/lib.rs");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(dir)
        .args(["build", "--quiet", "--lib"])
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS");
    if occ {
        cargo.args(["--features", "occ"]);
    }
    let started = Instant::now();
    let status = cargo.status().expect("run cargo");
    let took = started.elapsed();
    assert!(status.success(), "the generated crate failed to build");
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let runs: usize = std::env::var("OCC_COMPILE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compile-time");
    write_crate(&dir);
    // The dependencies, once each way, untimed.
    build(&dir, false);
    build(&dir, true);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        without.push(build(&dir, false));
        with.push(build(&dir, true));
    }
    let (without, with) = (median(without), median(with));
    let added = with.as_secs_f64() - without.as_secs_f64();
    println!(
        "{MODELS} models, debug build of the crate alone, median of {runs}: \
         without the derive {:.2} s, with it {:.2} s: {added:+.2} s ({:+.1}%)",
        without.as_secs_f64(),
        with.as_secs_f64(),
        added / without.as_secs_f64() * 100.0
    );
}
