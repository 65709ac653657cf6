//! `scripts/smoke.sh`, the check users run against their deployed stack, run here against
//! the runner (with and without an API key) and against `cargo lambda watch` (the functions
//! under the Lambda emulator), so the script and the API cannot drift apart.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use api_tests::TestApp;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the script against `base`, printing its report; panics when it fails.
async fn smoke(base: &str, key: Option<&str>) {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(repo().join("scripts/smoke.sh")).arg(base);
    if let Some(key) = key {
        cmd.arg(key);
    }
    let out = cmd.output().await.expect("run bash");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "smoke.sh failed against {base}:\n{report}"
    );
    assert!(report.contains("smoke test passed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_script_passes_against_the_runner() {
    let key = "smoke-key-0123456789abcdef";
    let app = TestApp::with_config(|c| c.api_key = Some(key.to_owned())).await;
    let server = app.serve().await;
    smoke(&server.url(""), Some(key)).await;
    let open = TestApp::new().await;
    let server = open.serve().await;
    smoke(&server.url(""), None).await;
}

/// The smoke script fails, naming the check, when the API misbehaves: here an API that
/// answers every unknown path with a bare `{"message":"Not Found"}`, as API Gateway does
/// without a default route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_script_catches_a_missing_default_route() {
    let app = TestApp::new().await;
    let router = app.router.clone().fallback(|| async {
        (
            http::StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            r#"{"message":"Not Found"}"#,
        )
    });
    let server = api_tests::Server::start(router).await;
    let out = tokio::process::Command::new("bash")
        .arg(repo().join("scripts/smoke.sh"))
        .arg(server.url(""))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("FAIL  unknown path: 404 problem (default route)"),
        "{report}"
    );
}

/// `cargo-lambda`, from `CARGO_LAMBDA_BIN`, the suite's tool virtualenv, or the `PATH`.
fn cargo_lambda() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("CARGO_LAMBDA_BIN") {
        return Some(bin.into());
    }
    let venv = repo().join("target/py-tools/bin/cargo-lambda");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("cargo-lambda")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "cargo-lambda".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_script_passes_against_cargo_lambda_watch() {
    let Some(bin) = cargo_lambda() else {
        eprintln!(
            "SKIP smoke_script_passes_against_cargo_lambda_watch: cargo-lambda is not installed \
             (scripts/ensure-deps.sh installs it into target/py-tools; or set CARGO_LAMBDA_BIN)"
        );
        return;
    };
    // A Redis of the test's own on a free port, named with the README's override.
    let redis = api_tests::start_redis(&[]);
    let port = api_tests::binary::free_port();
    // The emulator compiles each function at its first request: a debug build, in the
    // workspace's target directory.
    let child = Command::new(&bin)
        .current_dir(repo())
        .args(["lambda", "watch", "--invoke-port", &port.to_string()])
        .args(["--env-var", &format!("REDIS_URL={}", redis.url())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start cargo lambda watch");
    // The emulator and the functions it starts are one process group: ended together, also
    // when an assertion below fails.
    let _watch = GroupOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // Wait for every function to have been built and to answer (not a 5xx), up to 15 min.
    let started = Instant::now();
    let probes = [
        "/health",
        "/cache/x",
        "/users/x",
        "/rate-limit/check?user_id=x",
        "/lock/x",
        "/queue/x/all",
        "/openapi.json",
    ];
    for probe in probes {
        loop {
            let answered = http
                .get(format!("{base}{probe}"))
                .timeout(Duration::from_secs(600))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() < 500);
            if answered {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "cargo lambda watch never answered {probe}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    smoke(&base, None).await;
    // CORS is the functions' (off by default), not the emulator's permissive layer.
    let r = http
        .get(format!("{base}/health"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none()
            && r.headers()
                .get("access-control-allow-credentials")
                .is_none(),
        "cargo lambda watch added CORS headers: {:?}",
        r.headers()
    );
}

/// A process group leader whose group is stopped when dropped: SIGINT first (cargo-lambda
/// stops on Ctrl-C, and was seen to ignore SIGTERM), SIGKILL after 10 s.
struct GroupOnDrop(std::process::Child);

impl Drop for GroupOnDrop {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-s", "INT", "--", &group])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.0.wait();
    }
}
