#!/usr/bin/env python3
"""Benchmark suite of the Redis Cache API (run it with bench/run.sh).

In one run, on this machine, all on loopback:
  * redis-benchmark -t get,set -c 64 against a private redis-server: the ceiling;
  * webdis (a generic HTTP-to-Redis gateway) GET and SET, when installed, and webdis running
    the runner's own Lua scripts: EVALSHA of rate_limit.lua (one fixed window, as the rate-limit
    row), and RPUSH alternating with EVALSHA of the pop script (as the queue row) -- the same
    Redis work per request, so those two rows can be compared on like terms too;
  * the local runner (release build): GET /cache/{key}, POST /cache, GET /users/{id},
    GET /rate-limit/check, POST then GET /queue/tasks;
each driven by wrk at 64 connections, with requests/s, p50, p99 and errors, plus the runner's
peak RSS; and for each Lambda function binary its size and cold start (process start to the
first response through an emulated Lambda Runtime API), median of several runs.

Prints a table and writes bench/results/latest.json. `--scale` also loads 1,000,000 keys and
times /stats, listing, paging and /stats/reset at that size.
"""

import argparse
import http.server
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RELEASE = os.path.join(TARGET, "release")
# The functions as deployed: scripts/lambda-build.sh's target/lambda/<function>/bootstrap
# (the `lambda-release` profile: release, optimised for size).
LAMBDA = os.path.join(TARGET, "lambda")


def function_bin(name):
    return os.path.join(LAMBDA, name, "bootstrap")
FUNCTIONS = ["cache", "users", "rate-limit", "lock", "queue", "stats", "docs"]
CONNECTIONS = 64
# Settings of the caller's shell that would change what a row measures: the runner and the
# functions run with their defaults.
DEFAULT_CONFIG_UNSET = ("RUST_LOG", "TOKIO_WORKER_THREADS", "MAX_IN_FLIGHT_REQUESTS",
                        "MAX_CLIENT_CONNECTIONS", "REQUEST_TIMEOUT_MS", "API_KEY", "KEY_PREFIX",
                        "METRICS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class Proc:
    """A child process, killed on exit."""

    def __init__(self, args, env=None, stdout=subprocess.DEVNULL, unset=()):
        full = {k: v for k, v in os.environ.items() if k not in unset}
        self.p = subprocess.Popen(args, env={**full, **(env or {})}, stdout=stdout,
                                  stderr=subprocess.DEVNULL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def redis_server(port):
    return Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", tempfile.gettempdir()])


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True).stdout


def call(port, method, path, body=None):
    with socket.create_connection(("127.0.0.1", port)) as s:
        data = json.dumps(body).encode() if body is not None else b""
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


WRK_LUA = {
    "post_cache": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                  'wrk.body = \'{"key": "bench:post", "value": {"n": 1, "s": "hello"}, "ttl": 300}\'\n',
    # Alternates: a POST of a task, then a GET popping one (FIFO), so the queue stays short.
    "queue": 'local n = 0\nrequest = function()\n  n = n + 1\n'
             '  if n % 2 == 1 then\n'
             '    return wrk.format("POST", "/queue/tasks", {["Content-Type"] = "application/json"}, '
             '\'{"id": "t", "title": "bench"}\')\n'
             '  end\n  return wrk.format("GET", "/queue/tasks")\nend\n',
    # webdis: RPUSH of a task, then EVALSHA of the runner's pop script (its path is in
    # WEBDIS_POP, set below once the script is loaded), alternating as the "queue" row does.
    "webdis_queue": 'local n = 0\nrequest = function()\n  n = n + 1\n'
                    '  if n % 2 == 1 then return wrk.format("GET", WEBDIS_PUSH) end\n'
                    '  return wrk.format("GET", WEBDIS_POP)\nend\n',
}

SCRIPTS = os.path.join(ROOT, "shared", "src", "scripts")
# The runner rows whose Redis work webdis also runs, and that webdis row.
SAME_SCRIPT = {"runner GET /rate-limit/check": "webdis EVALSHA rate_limit.lua",
               "runner POST+GET /queue/tasks": "webdis RPUSH+EVALSHA queue pop"}


def plain_script(*files):
    """A script as the runner loads it without an Idempotency-Key (shared/src/scripts.rs,
    `plain!`): `local idem_record = true` and then the files, in order."""
    text = "local idem_record = true\n"
    for name in files:
        with open(os.path.join(SCRIPTS, name)) as f:
            text += f.read()
    return text


def parse_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def syscall_counter(pid):
    """`perf stat` counting the system calls of process `pid`, or None where perf cannot."""
    try:
        return subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def syscall_count(counter):
    """Stops a `syscall_counter` and returns what it counted (None when it could not count)."""
    if counter is None:
        return None
    counter.send_signal(signal.SIGINT)
    try:
        _, err = counter.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        counter.kill()
        return None
    for line in err.splitlines():
        cells = line.split(",")
        if len(cells) > 2 and cells[2] == "raw_syscalls:sys_enter":
            return int(cells[0]) if cells[0].isdigit() else None
    return None


def wrk(url, duration, script=None, allow_404=False, server_pid=None, redis_pid=None, prelude=""):
    """One wrk row. With `server_pid`, also the server's CPU time per request (µs); with
    `redis_pid`, Redis's (what the row's commands and scripts cost Redis: the two share the
    cores, so a row whose Redis work is heavier serves fewer requests per second)."""
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    redis_before = cpu_seconds(redis_pid) if redis_pid else None
    tmp = None
    if script:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        tmp.write(prelude + WRK_LUA[script])
        tmp.close()
        args += ["-s", tmp.name]
    counter = syscall_counter(server_pid) if server_pid else None
    if counter:
        time.sleep(0.3)  # perf attaches to the process before wrk starts
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    if tmp:
        os.unlink(tmp.name)
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else None
    redis_cpu = cpu_seconds(redis_pid) - redis_before if redis_pid else None
    syscalls = syscall_count(counter)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = parse_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors, "non_2xx": non2xx,
            "cpu_us_per_request": cpu * 1e6 / requests if (cpu is not None and requests) else None,
            "redis_cpu_us_per_request":
                redis_cpu * 1e6 / requests if (redis_cpu is not None and requests) else None,
            "syscalls_per_request": syscalls / requests if (syscalls is not None and requests) else None,
            "raw": out if (errors or non2xx) else None}


def redis_benchmark(port):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get,set", "-c", str(CONNECTIONS),
                          "-n", "300000", "--csv"], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        rows[cells[0]] = {"rps": float(cells[1]), "p50_ms": float(cells[4]), "p99_ms": float(cells[6]),
                          "errors": 0, "non_2xx": 0}
    return rows


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


# ---- Lambda cold start: a minimal Runtime API -------------------------------------------

EVENTS = {
    "cache": ("GET", "/cache/cold"), "users": ("GET", "/users/cold"),
    "rate-limit": ("GET", "/rate-limit/check?user_id=cold"), "lock": ("GET", "/lock/cold"),
    "queue": ("GET", "/queue/cold/all"), "stats": ("GET", "/health"), "docs": ("GET", "/openapi.json"),
}


def v2_event(method, path):
    raw_path, _, query = path.partition("?")
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
        "headers": {"host": "bench.local"}, "isBase64Encoded": False,
        "requestContext": {"accountId": "1", "apiId": "bench", "domainName": "bench.local",
                           "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "bench"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default",
                           "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
    }


def cold_start_ms(binary, event, redis_url):
    done = threading.Event()
    result = {}

    class Api(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # /2018-06-01/runtime/invocation/next
            if result.get("served"):
                done.wait(10)
                self.send_response(410)
                self.end_headers()
                return
            result["served"] = True
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:x:1:function:bench")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # .../response or .../error
            length = int(self.headers.get("Content-Length") or 0)
            result["body"] = self.rfile.read(length)
            result["at"] = time.perf_counter()
            result["path"] = self.path
            self.send_response(202)
            self.end_headers()
            done.set()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
           "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
           "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "REDIS_URL": redis_url}
    started = time.perf_counter()
    with Proc([binary], env=env, unset=DEFAULT_CONFIG_UNSET):
        ok = done.wait(10)
    server.shutdown()
    if not ok or not result["path"].endswith("/response"):
        raise RuntimeError(f"{binary}: no response through the runtime API ({result})")
    return (result["at"] - started) * 1000


# ---- the run -----------------------------------------------------------------------------

def machine():
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "redis": re.search(r"v=(\S+)", version).group(1)}


def webdis_script_rows(webdis_port, redis_port, duration, pid, redis_pid):
    """webdis running the runner's own scripts, with the runner rows' arguments: what the
    rate-limit and queue rows cost Redis, behind a generic gateway."""
    base = f"http://127.0.0.1:{webdis_port}"
    rate = redis_cli(redis_port, "SCRIPT", "LOAD", plain_script("rate_limit.lua")).strip()
    # KEYS: the caller's index and one fixed-window counter; ARGV: check, no nonce (a fixed
    # window reads none), cost 1, and the row's policy (limit 1000000, window 1 s).
    check = f"{base}/EVALSHA/{rate}/2/bench:rl:index/bench:rl:fixed/check/-/1/fixed_window/1000000/1000"
    pop = redis_cli(redis_port, "SCRIPT", "LOAD",
                    plain_script("queue_requeue_expired.lua", "queue_pop.lua")).strip()
    keys = "/".join(f"bench:q:{k}" for k in
                    ["pending", "processing", "claims", "leases", "deliveries", "final", "dead", "scheduled"])
    # ARGV: one task, a byte budget and the per-task framing, as the runner's pop of one.
    pop_path = f"/EVALSHA/{pop}/8/{keys}/1/1000000/8"
    task = urllib.parse.quote(json.dumps({"id": "t", "title": "bench", "created_at": "2026-01-01T00:00:00Z"}),
                              safe="")
    push_path = f"/RPUSH/bench:q:pending/{task}"
    # The same head start as the runner's queue, so pops never find the queue empty.
    redis_cli(redis_port, "DEL", "bench:q:pending")
    redis_cli(redis_port, "EVAL", "for i = 1, 100000 do redis.call('RPUSH', KEYS[1], ARGV[1]) end",
              "1", "bench:q:pending", urllib.parse.unquote(task))
    prelude = f'WEBDIS_PUSH = "{push_path}"\nWEBDIS_POP = "{pop_path}"\n'
    return [
        ("webdis EVALSHA rate_limit.lua", wrk(check, duration, server_pid=pid, redis_pid=redis_pid)),
        ("webdis RPUSH+EVALSHA queue pop",
         wrk(base, duration, "webdis_queue", server_pid=pid, redis_pid=redis_pid, prelude=prelude)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk row (default 10)")
    ap.add_argument("--cold-runs", type=int, default=7, help="cold starts per function (median)")
    ap.add_argument("--scale", action="store_true", help="also load 1,000,000 keys and time big-data paths")
    ap.add_argument("--baseline", metavar="RUNNER_BIN",
                    help="another local-runner binary (e.g. built from an earlier commit): its runner "
                         "rows are measured in the same run, each right after this build's, and "
                         "compared")
    ap.add_argument("--baseline-env", metavar="NAME=VALUE", action="append", default=[],
                    help="a setting of the baseline's runner (repeatable), e.g. METRICS=off; with no "
                         "--baseline, the baseline is this build with those settings (an A/B of one "
                         "setting in the same run)")
    ap.add_argument("--skip-functions", action="store_true",
                    help="leave out the Lambda sizes and cold starts (a quicker A/B of the runner)")
    args = ap.parse_args()

    runner_bin = os.path.join(RELEASE, "local-runner")
    functions = [] if args.skip_functions else FUNCTIONS
    for path in [runner_bin, *(function_bin(name) for name in functions)]:
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run bench/run.sh (it builds the binaries)")

    rows, results = [], {"machine": machine(), "connections": CONNECTIONS, "duration_s": args.duration,
                         "configuration": (
                             "runner and functions with their defaults, as scripts/run.sh starts them "
                             "(RUST_LOG unset = info, one server thread per CPU, default limits; output to "
                             "/dev/null); webdis with 2 threads and a pool of 64; wrk -t2 -c"
                             f"{CONNECTIONS}; CPU = user + system time of the server process per "
                             "request; syscalls counted by perf where it works")}
    redis_port = free_port()
    with redis_server(redis_port) as redis:
        wait_port(redis_port)
        redis_pid = redis.p.pid
        ceiling = redis_benchmark(redis_port)
        rows += [("redis-benchmark GET (ceiling)", ceiling["GET"]), ("redis-benchmark SET (ceiling)", ceiling["SET"])]

        if subprocess.run(["which", "webdis"], capture_output=True).returncode == 0:
            webdis_port = free_port()
            conf = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
            json.dump({"redis_host": "127.0.0.1", "redis_port": redis_port, "http_host": "127.0.0.1",
                       "http_port": webdis_port, "threads": 2, "pool_size": 64, "daemonize": False,
                       "database": 0, "verbosity": 0, "logfile": "/dev/null"}, conf)
            conf.close()
            with Proc(["webdis", conf.name]) as webdis:
                wait_port(webdis_port)
                redis_cli(redis_port, "SET", "bench:webdis", '"world"')
                pid = webdis.p.pid
                rows.append(("webdis GET", wrk(f"http://127.0.0.1:{webdis_port}/GET/bench:webdis",
                                               args.duration, server_pid=pid, redis_pid=redis_pid)))
                rows.append(("webdis SET", wrk(f"http://127.0.0.1:{webdis_port}/SET/bench:webdis2/value",
                                               args.duration, server_pid=pid, redis_pid=redis_pid)))
                rows += webdis_script_rows(webdis_port, redis_port, args.duration, pid, redis_pid)
            os.unlink(conf.name)

        runner_rows, results["runner_peak_rss_mb"], scale_results = measure_runner(
            runner_bin, redis_port, redis_pid, args)
        rows += runner_rows
        if scale_results:
            results["scale"] = scale_results
        if args.baseline or args.baseline_env:
            base_bin = args.baseline or runner_bin
            base_env = dict(kv.split("=", 1) for kv in args.baseline_env)
            base_rows, base_rss, _ = measure_runner(base_bin, redis_port, redis_pid, args,
                                                    scale_too=False, extra_env=base_env)
            label = " ".join([base_bin, *args.baseline_env])
            results["baseline"] = {"binary": label, "peak_rss_mb": base_rss,
                                   "rows": [{"row": name, **{k: v for k, v in r.items() if k != "raw"}}
                                            for name, r in base_rows]}

        cold = {}
        for name in functions:
            binary = function_bin(name)
            times = [cold_start_ms(binary, v2_event(*EVENTS[name]), f"redis://127.0.0.1:{redis_port}/0")
                     for _ in range(args.cold_runs)]
            cold[name] = {"size_mb": os.path.getsize(binary) / 1e6, "cold_start_ms": statistics.median(times)}
        results["functions"] = cold

    webdis = {r[0]: r[1] for r in rows}
    table = []
    for name, r in rows:
        # Every row against webdis GET (SET for writes), as the targets are stated; the two
        # scripted rows also against webdis running the same script (same Redis work).
        ref = webdis.get("webdis SET") if ("POST" in name or "SET" in name) else webdis.get("webdis GET")
        same = webdis.get(SAME_SCRIPT.get(name))
        ceil = ceiling["SET"] if ("POST" in name or "SET" in name) else ceiling["GET"]
        cpu, ref_cpu = r.get("cpu_us_per_request"), (ref or {}).get("cpu_us_per_request")
        same_cpu = (same or {}).get("cpu_us_per_request")
        table.append({"row": name, **{k: v for k, v in r.items() if k != "raw"},
                      "vs_webdis": r["rps"] / ref["rps"] if ref else None,
                      "cpu_vs_webdis": cpu / ref_cpu if (cpu and ref_cpu) else None,
                      "vs_webdis_same_script": r["rps"] / same["rps"] if same else None,
                      "cpu_vs_webdis_same_script": cpu / same_cpu if (cpu and same_cpu) else None,
                      "vs_ceiling": r["rps"] / ceil["rps"]})
        if r.get("raw"):
            print(f"--- {name}: errors or non-2xx ---\n{r['raw']}", file=sys.stderr)
    results["rows"] = table

    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "latest.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(render(results))


def measure_runner(runner_bin, redis_port, redis_pid, args, scale_too=True, extra_env=None):
    """The runner rows for one binary (with `extra_env` settings), on the shared Redis (emptied
    first)."""
    redis_cli(redis_port, "FLUSHALL")
    rows = []
    port = free_port()
    # The default configuration, as scripts/run.sh starts it: no RUST_LOG (so `info`), the
    # one server thread per CPU, the default limits; only where Redis is and the port.
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "PORT": str(port), **(extra_env or {})}
    with Proc([runner_bin], env=env, unset=DEFAULT_CONFIG_UNSET) as runner:
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        call(port, "POST", "/cache", {"key": "bench", "value": "world", "ttl": 3600})
        call(port, "POST", "/users", {"user_id": "bench", "name": "Bench", "email": "bench@example.com"})
        call(port, "DELETE", "/queue/tasks")
        # A head start, so pops never find the queue empty (every answer is a 2xx).
        for _ in range(100):
            call(port, "POST", "/queue/tasks/batch", [{"id": str(i), "title": "t"} for i in range(1000)])
        pid = runner.p.pid

        def row(name, url, script=None):
            rows.append((name, wrk(url, args.duration, script, server_pid=pid, redis_pid=redis_pid)))

        row("runner GET /cache/{key}", f"{base}/cache/bench")
        row("runner POST /cache", f"{base}/cache", "post_cache")
        row("runner GET /users/{id}", f"{base}/users/bench")
        row("runner GET /rate-limit/check", f"{base}/rate-limit/check?user_id=bench&limit=1000000&window=1")
        row("runner POST+GET /queue/tasks", base, "queue")
        rss = peak_rss_mb(runner.p.pid)
        scale_results = scale(redis_port, port) if (args.scale and scale_too) else None
    return rows, rss, scale_results


def render(results):
    m = results["machine"]
    out = [f"Machine: {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, Redis {m['redis']}; "
           f"{results['connections']} connections, {results['duration_s']} s per row; wrk, webdis, "
           f"Redis and the runner share the cores.", "",
           "Configuration: " + results["configuration"], "",
           "| row | req/s | p50 ms | p99 ms | errors | non-2xx | × webdis | × ceiling "
           "| server CPU µs/req | CPU × webdis | syscalls/req | Redis CPU µs/req |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(value, spec):
        return format(value, spec) if value is not None else "–"

    for r in results["rows"]:
        out.append(f"| {r['row']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
                   f"{r['non_2xx']} | {fmt(r['vs_webdis'], '.2f')} | {r['vs_ceiling']:.2f} | "
                   f"{fmt(r.get('cpu_us_per_request'), '.1f')} | {fmt(r.get('cpu_vs_webdis'), '.2f')} | "
                   f"{fmt(r.get('syscalls_per_request'), '.1f')} | "
                   f"{fmt(r.get('redis_cpu_us_per_request'), '.1f')} |")
    same = [r for r in results["rows"] if r.get("vs_webdis_same_script") is not None]
    if same:
        out += ["", "The scripted rows against webdis running the same script (the same Redis work "
                    "per request):", "", "| row | req/s × webdis | CPU × webdis |", "|---|---:|---:|"]
        out += [f"| {r['row']} | {r['vs_webdis_same_script']:.2f} | "
                f"{fmt(r.get('cpu_vs_webdis_same_script'), '.2f')} |" for r in same]
    out += ["", f"Runner peak RSS under this load: {results['runner_peak_rss_mb']:.1f} MB", "",
            "| Lambda function | binary (stripped) | cold start to first response (median) |",
            "|---|---:|---:|"]
    for name, f in results["functions"].items():
        out.append(f"| {name} | {f['size_mb']:.2f} MB | {f['cold_start_ms']:.1f} ms |")
    if "scale" in results:
        out += ["", "Scale (1,000,000 keys):", ""] + [f"- {k}: {v}" for k, v in results["scale"].items()]
    if "baseline" in results:
        b = results["baseline"]
        out += ["", f"Against the baseline {b['binary']} (same run, same Redis; peak RSS "
                    f"{b['peak_rss_mb']:.1f} MB):", "",
                "| row | this build req/s | baseline req/s | ratio | this build CPU µs/req | baseline CPU µs/req |",
                "|---|---:|---:|---:|---:|---:|"]
        now = {r["row"]: r for r in results["rows"]}
        for r in b["rows"]:
            mine = now[r["row"]]
            out.append(f"| {r['row']} | {mine['rps']:,.0f} | {r['rps']:,.0f} | {mine['rps'] / r['rps']:.2f} | "
                       f"{mine['cpu_us_per_request']:.1f} | {r['cpu_us_per_request']:.1f} |")
    return "\n".join(out)


def timed(fn, runs=5):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def scale(redis_port, port):
    """1,000,000 keys under the prefix: /stats, listing and reset must stay bounded."""
    n = 1_000_000
    proto = "".join(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$1\r\n1\r\n"
                    for k in (f"demo_api:cache:s{i}" for i in range(n)))
    subprocess.run(["redis-cli", "-p", str(redis_port), "--pipe"], input=proto, text=True,
                   check=True, capture_output=True)
    tasks = [json.dumps({"id": str(i), "title": "t"}) for i in range(1000)]
    for _ in range(100):  # 100,000 tasks
        call(port, "POST", "/queue/big/batch", [json.loads(t) for t in tasks])
    redis_cli(redis_port, "CONFIG", "SET", "latency-monitor-threshold", "5")
    out = {
        "keys": int(redis_cli(redis_port, "DBSIZE")),
        "GET /stats median ms": round(timed(lambda: call(port, "GET", "/stats")), 2),
        "GET /stats?exact=true ms": round(timed(lambda: call(port, "GET", "/stats?exact=true"), runs=1), 1),
        "GET /cache?count=100 (one page) median ms": round(timed(lambda: call(port, "GET", "/cache?count=100")), 2),
        "GET /queue/big/all?offset=50000&limit=100 median ms":
            round(timed(lambda: call(port, "GET", "/queue/big/all?offset=50000&limit=100")), 2),
    }
    t = time.perf_counter()
    status, body = call(port, "POST", "/stats/reset")
    out["POST /stats/reset ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["keys deleted"] = json.loads(body)["keys_deleted"]
    latest = redis_cli(redis_port, "LATENCY", "LATEST").split()
    # LATENCY LATEST: event, time, latest ms, max ms (empty when nothing passed 5 ms).
    out["longest Redis stall during the run (ms, events over 5 ms)"] = max(
        (int(latest[i + 3]) for i in range(0, len(latest), 4)), default=0)
    return out


if __name__ == "__main__":
    main()
