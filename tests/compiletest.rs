//! Compile tests: each mistake in `tests/ui/fail` must be reported at its
//! culprit with a `help:` line (the expected output is the `.stderr` beside
//! it), and each model in `tests/ui/pass` must compile and work. They need only
//! the default `sqlite` feature.
//!
//! `tests/ui/locks` (a row lock on a SQLite connection) must give the same
//! message whichever other backends are compiled in: CI runs it in each
//! combination with `OCC_UI=locks`, which skips the rest.
//! `tests/ui/locks-sqlite-only` holds the same cases for a build with SQLite
//! alone (what `cargo test` on a fresh machine compiles).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    if std::env::var("OCC_UI").as_deref() != Ok("locks") {
        t.compile_fail("tests/ui/fail/*.rs");
        t.pass("tests/ui/pass/*.rs");
    }
    // Without a server backend rustc words one label differently: the same
    // cases, with their own expected output.
    if cfg!(all(
        feature = "sqlite",
        any(feature = "postgres", feature = "mysql")
    )) {
        t.compile_fail("tests/ui/locks/*.rs");
    } else if cfg!(feature = "sqlite") {
        t.compile_fail("tests/ui/locks-sqlite-only/*.rs");
    }
}
