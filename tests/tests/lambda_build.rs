//! `scripts/lambda-build.sh` as the README's Deploy section runs it, on a target directory
//! where the test binaries and the bench's function builds already are (they once put a
//! `cache` binary where cargo-lambda puts the `cache/` folder, and the build failed with
//! "File exists"). Ignored by a plain `cargo test`: it compiles seven release binaries, so
//! scripts/test.sh runs it as a step of its own, after the other tests.
//!
//! It builds for x86_64 (`--x86-64`): the default, arm64, needs Rust's
//! aarch64-unknown-linux-gnu standard library (`rustup target add`), which the test machine
//! cannot download.

use std::collections::BTreeSet;

use api_tests::binary::{self, readme};

/// Every function in template.yaml (`CodeUri: functions/<crate>`, whose binary has the
/// crate's name, as cargo-lambda's folder under target/lambda/ does).
fn template_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(readme::root().join("template.yaml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("CodeUri: functions/"))
        .map(|dir| dir.trim_end_matches('/').to_owned())
        .collect()
}

/// bench/run.sh measures the functions as deployed: it builds them with this very script.
fn bench_builds_with_the_script() {
    let script = std::fs::read_to_string(readme::root().join("bench/run.sh")).unwrap();
    assert!(
        script
            .lines()
            .any(|l| l.trim_start().starts_with("scripts/lambda-build.sh")),
        "bench/run.sh should build the functions with scripts/lambda-build.sh"
    );
}

#[test]
#[ignore = "compiles seven release binaries: scripts/test.sh runs it after the other tests"]
fn lambda_build_leaves_a_bootstrap_for_every_function() {
    let functions = template_functions();
    assert_eq!(functions.len(), 7, "{functions:?}");
    bench_builds_with_the_script();

    // The test binaries are built (this is one of them); then the bench's build, then the
    // user's own deploy build on the same target directory (it once failed there with
    // "File exists"). The second finds everything compiled and only places the bootstraps.
    binary::lambda_build("as bench/run.sh builds the functions");
    for function in &functions {
        let _ = std::fs::remove_file(binary::bootstrap(function));
    }
    binary::lambda_build("the deploy build after the bench's");
    for function in &functions {
        let file = binary::bootstrap(function);
        let head = std::fs::read(&file)
            .map(|bytes| bytes.get(..4).map(<[u8]>::to_vec))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            head.as_deref(),
            Some(&b"\x7fELF"[..]),
            "{} is no executable",
            file.display()
        );
    }
}
