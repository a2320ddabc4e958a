//! Compile tests of `#[derive(Optimistic)]`: each mistake in `tests/ui/fail`
//! must be reported at its culprit with a `help:` line (the expected output is
//! the `.stderr` beside it), and each model in `tests/ui/pass` must compile
//! and work. They need only the default `sqlite` feature.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
