//! The shipped binaries as processes, driven as a user drives them: the `local-runner`
//! binary started from a README command (its `NAME=value` settings and arguments), and the
//! README's `curl` commands run with the real `curl` against it.
//!
//! `scripts/run.sh` and `cargo run --release -p local-runner --` are run as the runner binary
//! of the dev profile: the same code, without the minutes a fat-LTO release build would add
//! to every test run ([`run_sh_runs_the_runner`] checks that the script is only that).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

pub mod readme;

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| readme::root().join("target"))
}

/// A command with the user's environment, not the one cargo gives a test: under the test's,
/// a nested cargo build reruns build scripts that watch variables (ring's), and the next
/// `cargo test` rebuilds them back.
pub fn user_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env_clear().current_dir(readme::root());
    for (name, value) in std::env::vars_os() {
        let text = name.to_string_lossy();
        let set_by_cargo = (text.starts_with("CARGO_")
            && !matches!(&*text, "CARGO_HOME" | "CARGO_TARGET_DIR"))
            || matches!(&*text, "OUT_DIR" | "LD_LIBRARY_PATH" | "RUST_BACKTRACE");
        if !set_by_cargo {
            command.env(name, value);
        }
    }
    command
}

/// Runs `cargo <args>` in the workspace, panicking with `what` when it fails.
pub fn cargo(args: &[&str], what: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = user_command(cargo).args(args).status().expect("run cargo");
    assert!(status.success(), "{what}: cargo {args:?} failed");
}

/// Runs `scripts/lambda-build.sh --x86-64` (the README's Deploy build, for x86_64: this
/// machine cannot download Rust's aarch64 standard library) with the cargo-lambda that
/// scripts/test.sh installs under target/py-tools first on `PATH`; `what` names the run in a
/// failure. The bootstraps are then at [`bootstrap`].
pub fn lambda_build(what: &str) {
    let command = readme::command("scripts/lambda-build.sh");
    let mut path = vec![target_dir().join("py-tools").join("bin")];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).expect("PATH");
    let status = user_command("sh")
        .env("PATH", &path)
        .args(["-c", &format!("{command} --x86-64")])
        .status()
        .expect("run sh");
    assert!(status.success(), "{command} --x86-64 ({what}) failed");
}

/// Where [`lambda_build`] leaves `function`'s binary: target/lambda/<function>/bootstrap,
/// the file template.yaml deploys.
pub fn bootstrap(function: &str) -> PathBuf {
    target_dir().join("lambda").join(function).join("bootstrap")
}

/// The `local-runner` binary (dev profile), built once per test process: `cargo test
/// --workspace` has built it already, `cargo test -p api-tests` has not.
pub fn runner_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo(
            &["build", "--locked", "--quiet", "-p", "local-runner"],
            "build the runner",
        );
        target_dir().join("debug").join("local-runner")
    })
    .clone()
}

/// Checks that `scripts/run.sh` ends by running the runner with its arguments, which is
/// what lets the tests run the runner binary where the README says `scripts/run.sh`.
pub fn run_sh_runs_the_runner() {
    let script = std::fs::read_to_string(readme::root().join("scripts/run.sh")).expect("run.sh");
    let last = script.lines().rev().find(|l| !l.trim().is_empty());
    assert_eq!(
        last,
        Some(r#"exec cargo run --release --locked -p local-runner -- "$@""#),
        "scripts/run.sh changed: update tests/src/binary.rs"
    );
}

/// A README command split into its leading `NAME=value` settings and its words (the
/// runner's commands have no quoting).
pub fn split_command(command: &str) -> (Vec<(String, String)>, Vec<String>) {
    assert!(
        !command.contains(['"', '\'']),
        "quoted words need a shell: {command}"
    );
    let mut env = Vec::new();
    let mut words = command.split_whitespace().peekable();
    while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
        if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            break;
        }
        env.push((name.to_owned(), value.to_owned()));
        words.next();
    }
    (env, words.map(str::to_owned).collect())
}

/// A runner process on a free port, killed on drop; its output is collected.
pub struct Runner {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Runner {
    /// Runs a README command that starts the runner (`scripts/run.sh ...`, `cargo run
    /// --release -p local-runner -- ...`), with its settings plus `extra_env`, and waits until
    /// it listens. The process gets no other setting from the test's environment.
    pub fn from_readme(command: &str, extra_env: &[(&str, &str)]) -> Self {
        let (mut env, words) = split_command(command);
        let args = runner_args(&words, command);
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self::start(&env, &args)
    }

    /// Starts the runner binary with exactly `env` (plus `PATH`, `HOME`, `REDIS_SERVER_BIN`
    /// unless `env` names them, and `RUST_LOG=info`, the default level, unless `env` sets
    /// it) and `args`, on a free port, and waits until it listens.
    pub fn start(env: &[(String, String)], args: &[String]) -> Self {
        let port = free_port();
        let mut command = Command::new(runner_bin());
        command.env_clear();
        for inherited in ["PATH", "HOME", "REDIS_SERVER_BIN"] {
            if let Some(value) = std::env::var_os(inherited) {
                command.env(inherited, value);
            }
        }
        command
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PORT", port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start local-runner");
        let log = collect(&mut child);
        let mut runner = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !runner.log().contains("listening") {
            if let Ok(Some(status)) = runner.child.try_wait() {
                // Let the output threads catch up with the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the runner exited ({status}) instead of listening:\n{}",
                    runner.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the runner is not listening after 30 s:\n{}",
                runner.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        runner
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until a line containing `needle` was printed; panics with the log if the
    /// process exits or `limit` passes first.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` from the runner within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Runner {
    /// SIGTERM first, as a user's Ctrl-C or a service manager would stop it, so that it stops
    /// its embedded `redis-server` too; SIGKILL if it has not exited within 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The runner's arguments in a command that starts it.
fn runner_args(words: &[String], command: &str) -> Vec<String> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["scripts/run.sh", args @ ..] => {
            run_sh_runs_the_runner();
            args.iter().map(|s| (*s).to_owned()).collect()
        }
        [
            "cargo",
            "run",
            "--release",
            "-p",
            "local-runner",
            "--",
            args @ ..,
        ] => args.iter().map(|s| (*s).to_owned()).collect(),
        _ => panic!("not a command that starts the runner: {command}"),
    }
}

/// Collects a child's stdout and stderr lines in the background.
pub fn collect(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    log
}

/// A free loopback port (free when asked; the runner binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What one `curl` command answered.
#[derive(Debug)]
pub struct CurlReply {
    /// The command as run.
    pub command: String,
    /// The HTTP status.
    pub status: u16,
    /// The body (the last line of the output before the status).
    pub body: String,
}

/// Runs the README's `curl` commands, in order, against `base` (in place of
/// `http://localhost:8002`). A `"name": "..."`
/// placeholder in a body is filled with the latest string `name` an answer carried (a lock's
/// `token`, a claim's `receipt`), and an unquoted `"name": ...` with the latest number (a
/// `fencing_token`), as a reader would paste them.
pub fn run_readme_curls(base: &str) -> Vec<CurlReply> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut numbers: HashMap<String, String> = HashMap::new();
    let mut replies = Vec::new();
    for command in readme::curls() {
        let mut line = command.replace("http://localhost:8002", base);
        for (name, value) in &seen {
            line = line.replace(
                &format!(r#""{name}": "...""#),
                &format!(r#""{name}": "{value}""#),
            );
        }
        // A number shown as `...` (a fencing token): the last answer's value of that name.
        for (name, value) in &numbers {
            line = line.replace(
                &format!(r#""{name}": ..."#),
                &format!(r#""{name}": {value}"#),
            );
        }
        let line = line.replacen("curl ", r"curl -sS --max-time 60 -w '\n%{http_code}' ", 1);
        let out = Command::new("sh")
            .args(["-c", &line])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{line}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<&str> = text.lines().collect();
        let status = lines.pop().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let body = lines.pop().unwrap_or_default().to_owned();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&body) {
            for (name, value) in fields {
                match value {
                    serde_json::Value::String(s) => {
                        seen.insert(name, s);
                    }
                    serde_json::Value::Number(n) => {
                        numbers.insert(name, n.to_string());
                    }
                    _ => {}
                }
            }
        }
        replies.push(CurlReply {
            command,
            status,
            body,
        });
    }
    replies
}

/// Statuses other than 2xx that the README's `curl` sequence gives on purpose.
const NOT_2XX: &[(&str, u16)] = &[
    // The batch pop just before took every task: there is nothing to claim, or to ack.
    (
        r#"curl -X POST "http://localhost:8002/queue/tasks/claim"#,
        404,
    ),
    ("curl -X POST http://localhost:8002/queue/tasks/ack", 404),
    // The entry has the tag the command names: not modified.
    (
        "curl -i http://localhost:8002/cache/hello -H 'If-None-Match:",
        304,
    ),
    // The tag of the entry before the compare-and-set just before: a lost update, refused.
    (
        "curl -X POST http://localhost:8002/cache -H 'If-Match:",
        412,
    ),
    // The fencing demo's stale write, refused on purpose.
    (
        r#"curl -X PUT http://localhost:8002/lock/report/protected -H "Content-Type: application/json" -d '{"fencing_token": 1,"#,
        409,
    ),
];

/// `/health`, then every README `curl` in order, each answering as the README says.
pub fn answers_the_readme(base: &str) {
    answers_the_readme_but(base, &[]);
}

/// What the README's commands answer on Lambda (`cargo lambda watch`) where it differs from
/// the runner, by design: `/metrics` is the runner's; a function writes its figures as EMF
/// lines instead (README, "Observability").
pub const ON_LAMBDA: &[(&str, u16)] = &[("curl http://localhost:8002/metrics", 404)];

/// [`answers_the_readme`], with `also`'s statuses for the commands it names.
pub fn answers_the_readme_but(base: &str, also: &[(&str, u16)]) {
    let health = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", &format!("{base}/health")])
        .output()
        .expect("curl /health");
    let health = String::from_utf8_lossy(&health.stdout).into_owned();
    assert!(health.ends_with("\n200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    for reply in run_readme_curls(base) {
        let expected = also
            .iter()
            .chain(NOT_2XX)
            .find(|(prefix, _)| reply.command.starts_with(prefix))
            .map(|(_, status)| *status);
        match expected {
            Some(status) => assert_eq!(reply.status, status, "{reply:?}"),
            None => assert!((200..300).contains(&reply.status), "{reply:?}"),
        }
    }
}
