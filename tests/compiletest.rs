//! Compile tests: each mistake in `tests/ui/fail` must be reported at its
//! culprit with a `help:` line (the expected output is the `.stderr` beside
//! it), and each model in `tests/ui/pass` must compile and work. They need only
//! the default `sqlite` feature.
//!
//! `tests/ui/locks` (a row lock on a SQLite connection) runs with every backend
//! compiled in, as CI builds: the compiler lists the lock impls that exist, so
//! its output depends on which backends are enabled.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
    if cfg!(all(feature = "postgres", feature = "mysql")) {
        t.compile_fail("tests/ui/locks/*.rs");
    }
}
