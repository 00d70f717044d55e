//! Misuse of `#[derive(SessionValue)]` fails to compile with an error that points at the cause.
//!
//! Each case is a file in `tests/ui/` with its expected output next to it. After changing a
//! message on purpose, regenerate with `TRYBUILD=overwrite cargo test -p flamingo-macros --test
//! compile_fail` and read every changed `.stderr` before committing it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
