//! The demo tour (`local-runner demo`): walks through every Redis pattern against a running
//! API, printing what each step does, the request and the answer (README, "Demo tour").
//!
//! Each step checks the status it expects, so a tour that finishes is also a smoke test.

use std::{io::Write, time::Duration};

use anstyle::{AnsiColor, Style};
use serde_json::{Value, json};

const TITLE: Style = AnsiColor::Cyan.on_default().bold();
const NOTE: Style = Style::new().dimmed();
const SENT: Style = AnsiColor::Yellow.on_default();
const GOOD: Style = AnsiColor::Green.on_default();
const BAD: Style = AnsiColor::Red.on_default();

mod locks;

/// Who serves the API the tour walks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// An API someone runs (`--url`): it outlives the tour, so its dashboard can watch.
    Running,
    /// The tour's own API and Redis, stopped when it ends: nothing left to watch.
    Own,
}

/// Walks the tour against the API at `base` (e.g. `http://127.0.0.1:8002`), writing to `out`.
/// Fails with a sentence naming the step whose answer was not the expected one.
/// `api_key`, when given, is sent with every request (`Authorization: Bearer`).
pub async fn run(
    base: &str,
    api: Api,
    api_key: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut tour = Tour {
        http: reqwest::Client::new(),
        base: base.trim_end_matches('/').to_owned(),
        api_key: api_key.map(str::to_owned),
        out,
        step: 0,
        // One caller per tour process, so two tours at once never share a limiter.
        caller: format!("demo-{}", std::process::id()),
    };
    // The dashboard draws this tour while it runs (the rate limit of its caller included).
    let dashboard = format!("{}/dashboard?caller={}", tour.base, tour.caller);
    match api {
        Api::Running => tour.line(&format!("{NOTE}Watch it live:{NOTE:#} {dashboard}"))?,
        Api::Own => tour.line(&format!(
            "{NOTE}This tour runs its own API and Redis, stopped when it ends.{NOTE:#} To watch \
             it on the dashboard, start the API (scripts/run.sh) and run the tour with \
             --url http://127.0.0.1:8002, then open the address it prints."
        ))?,
    }
    tour.cache().await?;
    tour.profiles().await?;
    tour.rate_limit().await?;
    tour.locks().await?;
    tour.queue().await?;
    tour.stats().await?;
    tour.line(&format!(
        "\n{GOOD}Tour complete.{GOOD:#} Every endpoint is in the interactive docs (/docs); \
         POST /stats/reset clears the demo data."
    ))
}

struct Tour<'a> {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    out: &'a mut dyn Write,
    step: usize,
    /// The rate-limited caller's id.
    caller: String,
}

impl Tour<'_> {
    fn line(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.out, "{text}").map_err(|e| format!("cannot write: {e}"))
    }

    fn section(&mut self, title: &str, why: &str) -> Result<(), String> {
        self.step += 1;
        self.line(&format!("\n{TITLE}{}. {title}{TITLE:#}", self.step))?;
        self.line(&format!("   {NOTE}{why}{NOTE:#}"))
    }

    /// Lets a state that the next step undoes (a full rate limit, a queue of three) last one
    /// poll of the dashboard (it polls every second), so a watcher sees it.
    async fn hold_for_the_dashboard(&self) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    fn note(&mut self, text: &str) -> Result<(), String> {
        self.line(&format!("   {NOTE}{text}{NOTE:#}"))
    }

    /// Sends a request, prints it and its answer, and checks the status is in `expect`.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: &[u16],
    ) -> Result<Value, String> {
        let (answer, _) = self.call_with(method, path, body, &[], expect).await?;
        Ok(answer)
    }

    /// [`Tour::call`] with request headers, printing them; also returns the answer's `ETag`.
    async fn call_with(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        expect: &[u16],
    ) -> Result<(Value, Option<String>), String> {
        let (status, etag, answer) = self.exchange(method, path, body.as_ref(), headers).await?;
        let sent: String = headers
            .iter()
            .map(|(n, v)| format!(" [{n}: {v}]"))
            .collect();
        let body = body.map(|b| format!(" {b}")).unwrap_or_default();
        self.line(&format!("{SENT}→ {method} {path}{sent}{body}{SENT:#}"))?;
        let style = if status < 400 { GOOD } else { BAD };
        let tag = etag
            .as_deref()
            .map(|t| format!(" [ETag: {t}]"))
            .unwrap_or_default();
        self.line(&format!(
            "{style}← {status}{style:#}{tag} {}",
            shorten(&answer.to_string(), 400)
        ))?;
        if !expect.contains(&status) {
            return Err(format!(
                "step {}: {method} {path} answered {status}, expected {expect:?}: {answer}",
                self.step
            ));
        }
        Ok((answer, etag))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let (status, _, answer) = self.exchange(method, path, body, &[]).await?;
        Ok((status, answer))
    }

    /// One request: its status, `ETag` and body.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Option<String>, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the API at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            etag,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn cache(&mut self) -> Result<(), String> {
        self.section(
            "Cache with expiry",
            "The entry (a hash: value, ETag) and its TTL in one script: Redis deletes it by itself when its TTL runs out.",
        )?;
        let value = json!({"greeting": "hello", "from": "the demo"});
        self.call(
            "POST",
            "/cache",
            Some(json!({"key": "demo:greeting", "value": value, "ttl": 2})),
            &[201],
        )
        .await?;
        self.call("GET", "/cache/demo:greeting", None, &[200])
            .await?;
        self.note("Waiting 2.5 s for the TTL to run out...")?;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        self.call("GET", "/cache/demo:greeting", None, &[404])
            .await?;
        self.call("GET", "/cache?pattern=demo:*", None, &[200])
            .await?;
        self.conditional_writes().await?;
        self.stampede_protection().await
    }

    /// Entity tags: a compare-and-set that wins, a lost update refused, a 304.
    async fn conditional_writes(&mut self) -> Result<(), String> {
        self.note(
            "Every entry has an ETag (SHA-1 of its value). If-Match makes a write a \
             compare-and-set in one script: a writer holding an old tag cannot overwrite a newer value.",
        )?;
        let first = json!({"key": "demo:counter", "value": 1});
        let (_, tags) = self
            .call_with("POST", "/cache", Some(first), &[], &[201])
            .await?;
        let read = tags.unwrap_or_default();
        let next = json!({"key": "demo:counter", "value": 2});
        let if_match = [("If-Match", read.as_str())];
        let (_, newer) = self
            .call_with("POST", "/cache", Some(next), &if_match, &[201])
            .await?;
        self.note("A second writer still holding the first tag: refused, nothing written.")?;
        let stale = json!({"key": "demo:counter", "value": 99});
        self.call_with("POST", "/cache", Some(stale), &if_match, &[412])
            .await?;
        let newer = newer.unwrap_or_default();
        self.call_with(
            "GET",
            "/cache/demo:counter",
            None,
            &[("If-None-Match", newer.as_str())],
            &[304],
        )
        .await?;
        Ok(())
    }

    /// XFetch: the share of reads told to refresh rises as expiry nears.
    async fn stampede_protection(&mut self) -> Result<(), String> {
        self.note(
            "Stampede protection (XFetch): a value that took compute_ms to compute; each read is \
             told to refresh early with probability exp(-ttl_ms / compute_ms), so one reader of \
             many recomputes before expiry instead of all of them after it.",
        )?;
        let report =
            json!({"key": "demo:report", "value": {"rows": 1200}, "ttl": 3, "compute_ms": 1000});
        self.call("POST", "/cache", Some(report), &[201]).await?;
        for (wait_ms, when) in [(0, "3 s before expiry"), (2400, "under 1 s before expiry")] {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let mut told = 0;
            for _ in 0..20 {
                let (status, answer) = self.send("GET", "/cache/demo:report", None).await?;
                if status == 200 && answer["refresh_recommended"] == true {
                    told += 1;
                }
            }
            self.line(&format!(
                "{GOOD}← {told} of 20 reads {when} were told to refresh{GOOD:#}"
            ))?;
        }
        Ok(())
    }

    async fn profiles(&mut self) -> Result<(), String> {
        self.section(
            "User profiles in hashes, with hits and misses",
            "HSET + EXPIRE in one MULTI; reads are HGETALL (or HMGET for some fields); Redis counts hits and misses.",
        )?;
        let alice = json!({"user_id": "demo-alice", "name": "Alice Smith", "email": "alice@example.com", "age": 34, "city": "Lisbon"});
        self.call("POST", "/users", Some(alice), &[201]).await?;
        self.call("GET", "/users/demo-alice", None, &[200]).await?;
        self.call("GET", "/users/demo-alice?fields=name,email", None, &[200])
            .await?;
        self.call("GET", "/users/demo-nobody", None, &[404]).await?;
        self.call(
            "PATCH",
            "/users/demo-alice",
            Some(json!({"city": "Porto"})),
            &[200],
        )
        .await?;
        Ok(())
    }

    async fn rate_limit(&mut self) -> Result<(), String> {
        self.section(
            "Rate limiting in one Lua script",
            "12 calls at 10 per minute: the script counts and decides atomically, so exactly 10 pass.",
        )?;
        let user = self.caller.clone();
        for i in 1..=12 {
            let path = format!("/rate-limit/check?user_id={user}&limit=10&window=60");
            let (status, data) = self.send("GET", &path, None).await?;
            let count = &data["current_count"];
            let text = match status {
                200 => format!("{GOOD}Request {i}: ✅ Allowed ({count}/10){GOOD:#}"),
                429 => format!(
                    "{BAD}Request {i}: ⛔ Rate limited ({count}/10), retry in {}s{BAD:#}",
                    data["reset_in_seconds"]
                ),
                other => return Err(format!("rate limit answered {other}: {data}")),
            };
            self.line(&text)?;
        }
        self.hold_for_the_dashboard().await;
        self.note("A status answers the same without counting; a reset clears every limiter.")?;
        let status = format!("/rate-limit/status?user_id={user}&limit=10&window=60");
        self.call("GET", &status, None, &[200]).await?;
        self.call("DELETE", &format!("/rate-limit/{user}"), None, &[200])
            .await?;
        self.note("Two policies at once, all or nothing: GCRA 2 per minute and a daily log.")?;
        let policies = json!({"user_id": user, "policies": [
            {"name": "per_minute", "limit": 2, "window": 60, "algorithm": "gcra"},
            {"name": "daily", "limit": 1000, "window": 86400, "algorithm": "sliding_window"}]});
        for expect in [200, 200, 429] {
            let policies = Some(policies.clone());
            self.call("POST", "/rate-limit/check", policies, &[expect])
                .await?;
        }
        self.call("DELETE", &format!("/rate-limit/{user}"), None, &[200])
            .await?;
        Ok(())
    }

    async fn locks(&mut self) -> Result<(), String> {
        self.section(
            "Two contenders for one lock",
            "SET NX PX with a random token: one holder at a time; the other gets 409 at once.",
        )?;
        let path = "/lock/demo-payment_gateway?processing_time=1";
        let (a, b) = tokio::join!(self.send("POST", path, None), self.send("POST", path, None));
        let mut winners = 0;
        for (who, answer) in [("A", a?), ("B", b?)] {
            let (status, body) = answer;
            let style = if status == 200 { GOOD } else { BAD };
            self.line(&format!("{SENT}→ POST {path}{SENT:#} (contender {who})"))?;
            self.line(&format!(
                "{style}← {status}{style:#} {}",
                shorten(&body.to_string(), 300)
            ))?;
            winners += usize::from(status == 200);
        }
        if winners != 1 {
            return Err(format!(
                "step {}: expected exactly one lock holder, got {winners}",
                self.step
            ));
        }
        let grant = self
            .call("POST", "/lock/demo-report/acquire?ttl=10", None, &[201])
            .await?;
        self.call(
            "POST",
            "/lock/demo-report/release",
            Some(json!({"token": "not-the-token"})),
            &[409],
        )
        .await?;
        self.note("Nobody can release a lock they do not hold. The holder can:")?;
        self.call(
            "POST",
            "/lock/demo-report/release",
            Some(json!({"token": grant["token"]})),
            &[200],
        )
        .await?;
        self.fencing().await?;
        self.semaphore().await
    }

    async fn queue(&mut self) -> Result<(), String> {
        self.section(
            "A task queue on a list",
            "RPUSH in, LPOP out (FIFO); claim + ack moves a task to a processing list so a crash loses nothing.",
        )?;
        self.call("DELETE", "/queue/demo-tasks", None, &[200])
            .await?;
        for (id, title, priority) in [
            ("1", "Send email", "high"),
            ("2", "Process payment", "high"),
            ("3", "Generate report", "low"),
        ] {
            self.call(
                "POST",
                "/queue/demo-tasks",
                Some(json!({"id": id, "title": title, "priority": priority})),
                &[201],
            )
            .await?;
        }
        self.hold_for_the_dashboard().await;
        self.call("GET", "/queue/demo-tasks/all", None, &[200])
            .await?;
        let claimed = self
            .call(
                "POST",
                "/queue/demo-tasks/claim?visibility=30",
                None,
                &[200],
            )
            .await?;
        self.call(
            "POST",
            "/queue/demo-tasks/ack",
            Some(json!({"receipt": claimed["receipt"]})),
            &[200],
        )
        .await?;
        while self.send("GET", "/queue/demo-tasks/all", None).await?.1["queue_length"].as_u64()
            > Some(0)
        {
            self.call("GET", "/queue/demo-tasks", None, &[200]).await?;
        }
        self.call("GET", "/queue/demo-tasks", None, &[404]).await?;
        self.failing_tasks().await
    }

    /// A poison task dead-lettered after its last delivery, replayed; a delayed push.
    async fn failing_tasks(&mut self) -> Result<(), String> {
        self.note(
            "A task that keeps failing: each claim counts a delivery; nacking its last allowed \
             one (max_deliveries) sends it to the dead letters instead of back to the queue.",
        )?;
        let poison = json!({"id": "poison", "title": "Always fails"});
        self.call("POST", "/queue/demo-tasks", Some(poison), &[201])
            .await?;
        for _ in 0..2 {
            let claimed = self
                .call(
                    "POST",
                    "/queue/demo-tasks/claim?visibility=30&max_deliveries=2",
                    None,
                    &[200],
                )
                .await?;
            let receipt = json!({"receipt": claimed["receipt"]});
            self.call("POST", "/queue/demo-tasks/nack", Some(receipt), &[200])
                .await?;
        }
        self.call("GET", "/queue/demo-tasks/dead", None, &[200])
            .await?;
        let ids = json!({"ids": ["poison"]});
        self.call("POST", "/queue/demo-tasks/dead/replay", Some(ids), &[200])
            .await?;
        self.note("A delayed task: scheduled in Redis, it joins the queue once due.")?;
        let later = json!({"id": "later", "title": "Send reminder"});
        self.call(
            "POST",
            "/queue/demo-tasks?delay_ms=500",
            Some(later),
            &[202],
        )
        .await?;
        self.call("GET", "/queue/demo-tasks/all", None, &[200])
            .await?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        self.call("GET", "/queue/demo-tasks/all", None, &[200])
            .await?;
        self.call("DELETE", "/queue/demo-tasks", None, &[200])
            .await?;
        Ok(())
    }

    async fn stats(&mut self) -> Result<(), String> {
        self.section(
            "Monitoring",
            "INFO, DBSIZE and the profile counters, pipelined in one round trip.",
        )?;
        self.call("GET", "/stats", None, &[200]).await?;
        self.note("The queues, locks and semaphores under the prefix, by a bounded SCAN:")?;
        self.call("GET", "/stats/patterns", None, &[200]).await?;
        self.call("GET", "/health", None, &[200]).await?;
        Ok(())
    }
}

/// Cuts long answers for the terminal.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
