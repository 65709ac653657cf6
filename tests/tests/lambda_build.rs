//! `scripts/lambda-build.sh` as the README's Deploy section runs it, on a target directory
//! where the test binaries and the bench's function builds already are (they once put a
//! `cache` binary where cargo-lambda puts the `cache/` folder, and the build failed with
//! "File exists"). Ignored by a plain `cargo test`: it compiles seven release binaries, so
//! scripts/test.sh runs it as a step of its own, after the other tests.
//!
//! It builds for x86_64 (`--x86-64`): the default, arm64, needs Rust's
//! aarch64-unknown-linux-gnu standard library (`rustup target add`), which the test machine
//! cannot download.

use std::{collections::BTreeSet, path::PathBuf};

use api_tests::binary::{self, readme};

/// The folder of every function in template.yaml (`CodeUri: target/lambda/<name>/`).
fn template_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(readme::root().join("template.yaml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("CodeUri: target/lambda/"))
        .map(|dir| dir.trim_end_matches('/').to_owned())
        .collect()
}

/// The profile `bench/run.sh` builds the functions with (`cargo build --profile NAME`).
fn bench_profile() -> String {
    let script = std::fs::read_to_string(readme::root().join("bench/run.sh")).unwrap();
    script
        .split("--profile ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("bench/run.sh builds the functions with --profile")
        .to_owned()
}

#[test]
#[ignore = "compiles seven release binaries: scripts/test.sh runs it after the other tests"]
fn lambda_build_leaves_a_bootstrap_for_every_function() {
    let command = readme::command("scripts/lambda-build.sh");
    let functions = template_functions();
    assert_eq!(functions.len(), 7, "{functions:?}");

    // What the tests and the bench leave behind: the bench's function builds (one is
    // enough to collide; the tests' lambda_runtime builds `cache` the same way).
    let profile = bench_profile();
    binary::cargo(
        &["build", "--profile", &profile, "--locked", "-p", "cache"],
        "the bench's build of a function",
    );
    assert!(binary::target_dir().join(&profile).join("cache").is_file());

    let tools = binary::target_dir().join("py-tools").join("bin");
    let mut path = vec![tools];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let bootstrap = |function: &str| -> PathBuf {
        binary::target_dir()
            .join("lambda")
            .join(function)
            .join("bootstrap")
    };
    // So that every bootstrap found afterwards is this build's.
    for function in &functions {
        let _ = std::fs::remove_file(bootstrap(function));
    }
    let status = binary::user_command("sh")
        .env("PATH", std::env::join_paths(path).unwrap())
        .args(["-c", &format!("{command} --x86-64")])
        .status()
        .unwrap();
    assert!(status.success(), "{command} --x86-64 failed");
    for function in &functions {
        let file = bootstrap(function);
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
