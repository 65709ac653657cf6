//! schemathesis against `/openapi.json`: every check (server errors, status codes, content
//! types, headers, response schemas, negative and positive data), plus stateful sequences,
//! against a runner on a real Redis. Zero failures allowed.
//!
//! Two heuristics are excluded: `use_after_free` and `ensure_resource_availability` guess
//! that a `DELETE` makes the `GET`s of "the same resource" 404 and a `POST` makes them 200;
//! a queue is a collection, whose view stays 200 (empty) after a delete, and whose `ack`
//! needs a receipt from `claim`, not from the `POST`. Settings: `tests/schemathesis.toml`.
//! One worker: with several, schemathesis 4.x can fail inside its own code generator
//! ("AST constructor recursion depth mismatch"), which says nothing about the API.
//! The binary comes from `SCHEMATHESIS_BIN`, else `target/py-tools/bin/st` (which
//! `scripts/test.sh` installs).

use std::{path::PathBuf, process::Command};

use api_tests::TestApp;

fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-tools/bin/st")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let bin = schemathesis();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh (it installs schemathesis) or set SCHEMATHESIS_BIN",
        bin.display()
    );
    // With an API key, as the document declares one: `ignored_auth` then checks that every
    // guarded operation refuses requests without it (or with a wrong one).
    const KEY: &str = "schemathesis-key-0123456789";
    let app = TestApp::with_config(|c| c.api_key = Some(KEY.into())).await;
    let server = app.serve().await;
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let url = server.url("/openapi.json");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["--no-color", "--config-file", config, "run", &url])
            .args(["--checks", "all"])
            .args(["--header", &format!("Authorization: Bearer {KEY}")])
            .args([
                "--exclude-checks",
                "use_after_free,ensure_resource_availability",
            ])
            .args(["--max-examples", "50", "--workers", "1"])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
