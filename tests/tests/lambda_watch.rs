//! "Locally, the Lambda way": `cargo lambda watch` with the README's two ways of naming the
//! Redis (`--env-var REDIS_URL=...` and `REDIS_URL=... cargo lambda watch`), serving the
//! README's `curl` commands on the production paths, each answered by its own function.
//!
//! Needs cargo-lambda (scripts/test.sh installs it into target/py-tools); skips, saying
//! so, without it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use api_tests::{
    binary::{self, readme},
    start_redis,
};

/// The folder holding `cargo-lambda`: on the `PATH`, else the tools virtualenv.
fn cargo_lambda_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([binary::target_dir().join("py-tools").join("bin")])
        .find(|dir| dir.join("cargo-lambda").is_file())
}

/// `cargo lambda watch`, killed (SIGTERM first, so it stops its functions) on drop.
struct Watch {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watch {
    /// Runs a README `cargo lambda watch` command on a free invoke port (9000 may be taken
    /// on a shared machine), with nothing else of the test's environment but the toolchain's.
    fn start(command: &str, tools: &Path, port: u16) -> Self {
        let (env, words) = binary::split_command(command);
        assert_eq!(words[..3], ["cargo", "lambda", "watch"], "{command}");
        let mut path = vec![tools.to_path_buf()];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut run = Command::new(&words[0]);
        run.env_clear()
            .env("PATH", std::env::join_paths(path).unwrap())
            .current_dir(readme::root())
            .args(&words[1..])
            .args(["--invoke-port", &port.to_string()])
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for inherited in [
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
        ] {
            if let Some(value) = std::env::var_os(inherited) {
                run.env(inherited, value);
            }
        }
        let mut child = run.spawn().expect("start cargo lambda watch");
        let log = binary::collect(&mut child);
        Self { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` of `method path` (with a JSON body when given); the status and body.
fn curl(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let mut run = Command::new("curl");
    run.args([
        "-sS",
        "--max-time",
        "300",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        url,
    ]);
    if let Some(body) = body {
        run.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = run.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// The value of cache entry `name` (the hash's `v`) in `redis`, read directly (not through the API).
fn stored(redis_url: &str, name: &str) -> Option<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("HGET")
        .arg(name)
        .arg("v")
        .query(&mut conn)
        .unwrap()
}

#[test]
fn cargo_lambda_watch_with_the_readme_overrides() {
    let Some(tools) = cargo_lambda_dir() else {
        eprintln!(
            "skipped: cargo-lambda is not installed (scripts/test.sh installs it: \
             pip install cargo-lambda, into target/py-tools)"
        );
        return;
    };
    // The README's overrides name a Redis on 6380; the test's own takes its place.
    let redis = start_redis(&[]);
    let readme_url = "redis://127.0.0.1:6380/0";
    for (form, command) in [
        (
            "--env-var",
            readme::command(&format!(
                "cargo lambda watch --env-var REDIS_URL={readme_url}"
            )),
        ),
        (
            "environment",
            readme::command(&format!("REDIS_URL={readme_url} cargo lambda watch")),
        ),
    ] {
        assert!(command.contains(readme_url), "{command}");
        let command = command.replace(readme_url, &redis.url());
        let port = binary::free_port();
        let watch = Watch::start(&command, &tools, port);
        let base = format!("http://localhost:{port}");
        // The first request builds and starts the function: wait for the server, then for it.
        let deadline = Instant::now() + Duration::from_secs(300);
        let (status, body) = loop {
            let (status, body) = curl("GET", &format!("{base}/health"), None);
            if status != 0 || Instant::now() > deadline {
                break (status, body);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(status, 200, "{form}: {body}\n{}", watch.log());
        // Written through the function, read straight from the test's Redis: the override
        // reached the function.
        let (status, body) = curl(
            "POST",
            &format!("{base}/cache"),
            Some(&format!(r#"{{"key": "via-{form}", "value": "x"}}"#)),
        );
        assert_eq!(status, 201, "{form}: {body}\n{}", watch.log());
        assert_eq!(
            stored(&redis.url(), &format!("demo_api:cache:via-{form}")).as_deref(),
            Some("\"x\""),
            "{form}: the function did not write to REDIS_URL's Redis"
        );
        if form == "--env-var" {
            binary::answers_the_readme_but(&base, binary::ON_LAMBDA);
        }
    }
}
