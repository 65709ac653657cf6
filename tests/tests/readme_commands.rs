//! The README's commands, run as a user runs them: the runner binary started from the
//! README's command lines on real Redis servers of every kind (one server, with a password,
//! an ACL user or TLS; a 6-node cluster; a Sentinel group), then the README's `curl`
//! commands, run with `curl`, against it; the demo tour; `cargo lambda watch` with the
//! README's override. The commands are read from README.md, and
//! `every_readme_command_is_covered` fails when the README shows a command this list does
//! not account for (or no longer shows one it does).

use std::{process::Command, time::Duration};

use api_tests::redis_process::{RedisProcess, answers_ping, redis_server_bin};
use api_tests::{
    binary::{self, Runner, readme},
    start_redis,
    tls::Pki,
    topology::{RedisCluster, SentinelGroup},
};

/// Every command in the README's ```bash blocks and what executes it (`curl` commands:
/// `binary::answers_the_readme`, which runs all of them, in every mode here and under
/// `cargo lambda watch`).
const COVERED: &[(&str, &str)] = &[
    (
        "scripts/run.sh",
        "readme_commands: standalone_as_the_quick_start_shows, standalone_with_a_password, \
         standalone_with_an_acl_user, standalone_over_tls, \
         embedded_redis_when_nothing_is_configured, \
         embedded_redis_without_redis_server_says_how_to_get_one, demo_tours_a_running_api",
    ),
    (
        "scripts/test.sh",
        "is the suite itself (CI runs .ci/run, which runs it)",
    ),
    (
        "cargo run --release -p local-runner -- demo",
        "readme_commands: demo_tours_a_private_api",
    ),
    (
        "cargo run --release -p local-runner -- demo --url http://127.0.0.1:8002",
        "readme_commands: demo_tours_a_running_api",
    ),
    (
        "REDIS_MODE=cluster REDIS_URL=redis://:password@10.0.0.11:6379 REDIS_CLUSTER_NODES=10.0.0.12:6379,10.0.0.13:6379 scripts/run.sh",
        "readme_commands: cluster_mode_as_the_readme_shows",
    ),
    (
        "REDIS_MODE=sentinel REDIS_URL=redis://:password@primary/0 REDIS_SENTINEL_MASTER=mymaster REDIS_SENTINELS=10.0.0.21:26379,10.0.0.22:26379,10.0.0.23:26379 scripts/run.sh",
        "readme_commands: sentinel_mode_as_the_readme_shows",
    ),
    (
        "bench/run.sh",
        "not run (minutes of load); its build step, scripts/lambda-build.sh: lambda_build",
    ),
    (
        "pip install cargo-lambda",
        "scripts/ensure-deps.sh (ensure_py_tool cargo-lambda), for scripts/test.sh",
    ),
    (
        "sam build",
        "not run (no SAM CLI here); its build, cargo-lambda: lambda_build runs \
         scripts/lambda-build.sh --x86-64 (a step of scripts/test.sh)",
    ),
    (
        "sam deploy --guided",
        "not run (needs an AWS account); template: template.rs, cfn-lint",
    ),
    (
        "scripts/smoke.sh \"$API_URL\" \"$API_KEY\"",
        "smoke.rs, against the runner and against cargo lambda watch",
    ),
    (
        "scripts/lambda-build.sh",
        "lambda_build (--x86-64: no aarch64 standard library here), a step of scripts/test.sh",
    ),
    (
        "redis-server --daemonize yes --save \"\"",
        "not run (takes 127.0.0.1:6379 for the whole machine)",
    ),
    (
        "cargo lambda watch",
        "not run (needs the Redis on 6379); the override forms below are",
    ),
    (
        "cargo lambda watch --env-var REDIS_URL=redis://127.0.0.1:6380/0",
        "lambda_watch: cargo_lambda_watch_with_the_readme_overrides",
    ),
    (
        "REDIS_URL=redis://127.0.0.1:6380/0 cargo lambda watch",
        "lambda_watch: cargo_lambda_watch_with_the_readme_overrides",
    ),
];

#[test]
fn every_readme_command_is_covered() {
    let shown: Vec<String> = readme::commands()
        .into_iter()
        .filter(|c| !c.starts_with("curl "))
        .collect();
    let listed: Vec<&str> = COVERED.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        shown, listed,
        "the README's commands changed: update COVERED and the test that runs the command"
    );
    assert!(readme::curls().len() >= 20, "{:?}", readme::curls());
}

#[test]
fn standalone_as_the_quick_start_shows() {
    let redis = start_redis(&[]);
    let runner = Runner::from_readme(
        &readme::command("scripts/run.sh"),
        &[("REDIS_URL", redis.url().as_str())],
    );
    binary::answers_the_readme(&runner.base());
    assert!(
        runner.log().contains(r#"mode="standalone""#),
        "{}",
        runner.log()
    );
    // Written to a pipe, as when redirected to a file: plain text, no colour codes.
    assert!(!runner.log().contains('\u{1b}'), "{}", runner.log());
}

#[test]
fn standalone_with_a_password() {
    let redis = start_redis(&["--requirepass", "s3cret-pw"]);
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/0", redis.port());
    let runner = Runner::from_readme(
        &readme::command("scripts/run.sh"),
        &[("REDIS_URL", url.as_str())],
    );
    binary::answers_the_readme(&runner.base());
    assert!(!runner.log().contains("s3cret-pw"), "{}", runner.log());
}

#[test]
fn standalone_with_an_acl_user() {
    // `app` may touch the prefix's keys only: a stray key would be a NOPERM, then a 500.
    let redis = start_redis(&api_tests::ACL_APP_USER);
    let url = format!("redis://app:app-pass@127.0.0.1:{}/0", redis.port());
    let runner = Runner::from_readme(
        &readme::command("scripts/run.sh"),
        &[("REDIS_URL", url.as_str())],
    );
    binary::answers_the_readme(&runner.base());
}

#[test]
fn standalone_over_tls() {
    let pki = Pki::generate();
    let args = pki.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = RedisProcess::start_tls(redis_server_bin().expect("redis-server"), &args)
        .expect("TLS redis-server");
    let path = |p: &std::path::Path| p.display().to_string();
    let runner = Runner::from_readme(
        &readme::command("scripts/run.sh"),
        &[
            ("REDIS_URL", redis.url().as_str()),
            ("REDIS_TLS_CA_FILE", path(&pki.ca).as_str()),
            ("REDIS_TLS_CERT_FILE", path(&pki.client_cert).as_str()),
            ("REDIS_TLS_KEY_FILE", path(&pki.client_key).as_str()),
        ],
    );
    assert!(redis.url().starts_with("rediss://"));
    binary::answers_the_readme(&runner.base());
}

#[test]
fn cluster_mode_as_the_readme_shows() {
    let cluster = RedisCluster::start(Some("password"));
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port()).collect();
    mode_as_the_readme_shows(
        "cluster",
        "10.0.0.11:6379 10.0.0.12:6379 10.0.0.13:6379",
        &ports,
    );
}

#[test]
fn sentinel_mode_as_the_readme_shows() {
    let group = SentinelGroup::start(Some("password"));
    let ports: Vec<u16> = group.sentinels.iter().map(|s| s.port()).collect();
    mode_as_the_readme_shows(
        "sentinel",
        "10.0.0.21:26379 10.0.0.22:26379 10.0.0.23:26379",
        &ports,
    );
}

/// The README's `REDIS_MODE={mode} ...` command, its example addresses (space-separated) replaced by the
/// test's servers (`ports`, in order), answers the README's requests and logs the mode.
fn mode_as_the_readme_shows(mode: &str, example_addresses: &str, ports: &[u16]) {
    let mut command = readme::command(&format!("REDIS_MODE={mode} ..."));
    assert!(command.contains(":password@"), "{command}");
    for (example, port) in example_addresses.split(' ').zip(ports) {
        assert!(command.contains(example), "{command}");
        command = command.replace(example, &format!("127.0.0.1:{port}"));
    }
    let runner = Runner::from_readme(&command, &[]);
    binary::answers_the_readme(&runner.base());
    let logged = format!("mode=\"{mode}\"");
    assert!(runner.log().contains(&logged), "{}", runner.log());
}

#[test]
fn embedded_redis_when_nothing_is_configured() {
    if answers_ping(6379) {
        eprintln!("skipped: something answers on 127.0.0.1:6379, so the runner would use it");
        return;
    }
    let runner = Runner::from_readme(&readme::command("scripts/run.sh"), &[]);
    assert!(
        runner.log().contains("started a private redis-server"),
        "{}",
        runner.log()
    );
    binary::answers_the_readme(&runner.base());
}

#[test]
fn embedded_redis_without_redis_server_says_how_to_get_one() {
    if answers_ping(6379) {
        eprintln!("skipped: something answers on 127.0.0.1:6379, so the runner would use it");
        return;
    }
    let (env, words) = binary::split_command(&readme::command("scripts/run.sh"));
    assert!(env.is_empty() && words == ["scripts/run.sh"], "{words:?}");
    binary::run_sh_runs_the_runner();
    // A PATH with no redis-server on it, as on a machine without the package.
    let empty = std::env::temp_dir().join(format!("no-redis-server-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(binary::runner_bin())
        .env_clear()
        .env("PATH", &empty)
        .env("PORT", binary::free_port().to_string())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for hint in [
        "no redis-server binary",
        "apt-get install redis-server",
        "brew install redis",
        "docker-compose.redis.yml",
        "REDIS_URL",
    ] {
        assert!(err.contains(hint), "missing {hint:?} in: {err}");
    }
}

/// Runs `local-runner demo ...` as the README command says; returns its output.
fn demo(command: &str, extra_env: &[(&str, &str)]) -> String {
    let (_, words) = binary::split_command(command);
    assert_eq!(
        words[..6],
        ["cargo", "run", "--release", "-p", "local-runner", "--"]
    );
    let mut run = Command::new(binary::runner_bin());
    run.env_clear()
        .envs(extra_env.iter().copied())
        .args(&words[6..]);
    for inherited in ["PATH", "HOME", "REDIS_SERVER_BIN"] {
        if let Some(value) = std::env::var_os(inherited) {
            run.env(inherited, value);
        }
    }
    let out = run.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "1. Cache with expiry",
        "Request 12: ⛔ Rate limited (10/10)",
        "Tour complete.",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    stdout
}

#[test]
fn demo_tours_a_private_api() {
    let command = readme::command("cargo run --release -p local-runner -- demo");
    // "On a private API and Redis": a Redis the user names is left alone.
    let users = start_redis(&[]);
    let stdout = demo(&command, &[("REDIS_URL", users.url().as_str())]);
    // Its API stops with it: no dashboard address that would be gone, but how to watch.
    assert!(!stdout.contains("Watch it live"), "{stdout}");
    assert!(stdout.contains("--url http://127.0.0.1:8002"), "{stdout}");
    let mut conn = redis::Client::open(users.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let size: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(size, 0, "the tour wrote into REDIS_URL's Redis");
}

#[test]
fn demo_tours_a_running_api() {
    let redis = start_redis(&[]);
    // Every request logged (README, Settings: `RUST_LOG=info,access=debug`), to see the tour's.
    let runner = Runner::from_readme(
        &readme::command("scripts/run.sh"),
        &[
            ("REDIS_URL", redis.url().as_str()),
            ("RUST_LOG", "info,access=debug"),
        ],
    );
    let command = readme::command("cargo run --release -p local-runner -- demo --url ...")
        .replace("http://127.0.0.1:8002", &runner.base());
    let stdout = demo(&command, &[]);
    assert!(
        stdout.contains(&format!(
            "Watch it live: {}/dashboard?caller=demo-",
            runner.base()
        )),
        "{stdout}"
    );
    // The tour went through the running API: its request log shows the calls.
    runner.wait_for_log("path=/rate-limit/check", Duration::from_secs(5));
}
