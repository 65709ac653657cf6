//! Helpers shared by the tests of the `local-runner` binary.

use std::process::Command;

/// The binary cargo built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_local-runner");

/// Runs the binary with `setting` (and a Redis nobody answers at), asserts that it stops at
/// start-up with status 2, and returns what it printed on stderr.
pub(crate) fn start_up_error(setting: (&str, &str)) -> String {
    let out = Command::new(BIN)
        .env(setting.0, setting.1)
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .output()
        .expect("run local-runner");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8(out.stderr).expect("UTF-8 stderr")
}
