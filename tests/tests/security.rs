//! Security: the optional API key, Redis authentication (password, ACL user), TLS with a
//! custom CA and client certificates, and namespace isolation under adversarial input —
//! each against a real `redis-server` started with that configuration.

use api_tests::redis_process::{RedisProcess, redis_server_bin};
use api_tests::{ROUTES, TestApp, start_redis, tls::Pki};
use axum::body::Body;
use http::{Method, Request};
use redis::AsyncCommands;
use serde_json::json;
use shared::{AppState, config::TlsFiles};

const KEY: &str = "test-api-key-0123456789";

#[tokio::test]
async fn api_key_guards_every_route_but_health_and_docs() {
    let app = TestApp::with_config(|c| c.api_key = Some(KEY.into())).await;
    for (method, path) in ROUTES {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let path = api_tests::concrete(path);
        let send = |auth: Option<(&'static str, String)>| {
            let mut b = Request::builder().method(method.clone()).uri(&path);
            if let Some((name, value)) = auth {
                b = b.header(name, value);
            }
            app.request(b.body(Body::empty()).unwrap())
        };
        if path == "/health" {
            assert_eq!(send(None).await.status, 200, "/health stays open");
            continue;
        }
        let r = send(None).await;
        r.assert_problem(401, None);
        assert!(r.header("www-authenticate").starts_with("Bearer"), "{path}");
        send(Some((
            "authorization",
            "Bearer wrong-key-0123456789".into(),
        )))
        .await
        .assert_problem(401, None);
        send(Some(("x-api-key", format!("{KEY}x"))))
            .await
            .assert_problem(401, None);
        for auth in [
            ("authorization", format!("Bearer {KEY}")),
            ("x-api-key", KEY.to_owned()),
        ] {
            let r = send(Some(auth)).await;
            assert_ne!(
                r.status, 401,
                "{method} {path} refused the right key: {r:?}"
            );
        }
    }
    // Unknown paths do not reveal themselves without the key either.
    app.get("/nowhere").await.assert_problem(401, None);
    for open in [
        "/",
        "/openapi.json",
        "/docs/",
        "/redoc",
        "/redoc/redoc.standalone.js",
        "/dashboard",
        "/dashboard/dashboard.js",
    ] {
        assert_eq!(app.get(open).await.status, 200, "{open} must stay open");
    }
}

#[tokio::test]
async fn openapi_declares_the_key_so_swagger_can_authorize() {
    let app = TestApp::new().await;
    let doc = app.get("/openapi.json").await.body;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    let put = &doc["paths"]["/cache"]["post"];
    assert!(put["responses"]["401"].is_object());
    assert_eq!(put["security"][0]["bearer"], json!([]));
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([{}]));
}

#[test]
fn short_api_keys_are_refused_at_start() {
    let e =
        shared::Config::from_lookup(|n| (n == "API_KEY").then(|| "short".to_owned())).unwrap_err();
    assert_eq!(e.variable, "API_KEY");
    assert!(
        !e.to_string().contains("short"),
        "the key itself must not be printed: {e}"
    );
}

#[tokio::test]
async fn password_protected_redis() {
    let redis = start_redis(&["--requirepass", "s3cret-pass"]);
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}/0", redis.port());
    let app = TestApp::with_redis_and_config(redis, |c| c.redis_url = url).await;
    let r = app.post("/cache", json!({"key": "k", "value": 1})).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(app.get("/cache/k").await.body["value"], 1);

    // A wrong password is a clear error at start, naming the cause, never the password.
    let mut config = app.state.config.as_ref().clone();
    config.redis_url = format!("redis://:not-the-pass@127.0.0.1:{}/0", app.redis.port());
    let redacted = config.redacted_redis_url();
    let e = AppState::connect(config)
        .await
        .err()
        .expect("wrong password must fail");
    let text = format!("{e}");
    assert_eq!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed,
        "not an authentication failure: {text}"
    );
    assert!(
        !text.contains("not-the-pass") && !redacted.contains("not-the-pass"),
        "{text}"
    );
    // Redis's own words, not only the client library's "Password authentication failed".
    assert!(
        text.contains("WRONGPASS invalid username-password pair"),
        "{text}"
    );
}

#[tokio::test]
async fn acl_user_confined_to_the_prefix_runs_the_whole_api() {
    // `app` may touch demo_api:* keys only: any access outside the prefix would fail with
    // NOPERM and surface as a 500. The demo tour and every adversarial input below must not.
    let admin_user = ["--user", "admin", "on", ">admin-pass", "~*", "&*", "+@all"];
    let redis = start_redis(&[&api_tests::ACL_APP_USER[..], &admin_user].concat());
    let port = redis.port();
    let app = TestApp::with_redis_and_config(redis, |c| {
        c.redis_url = format!("redis://app:app-pass@127.0.0.1:{port}/0");
    })
    .await;
    let mut admin = redis::Client::open(format!("redis://admin:admin-pass@127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let foreign = [
        "other:cache:x",
        "demo_apix",
        "demo_api",
        "DEMO_API:cache:x",
        "x:demo_api:cache:y",
    ];
    for key in foreign {
        let () = admin.set(key, "keep").await.unwrap();
    }

    let server = app.serve().await;
    let mut out = Vec::new();
    local_runner::demo::run(
        &server.url(""),
        local_runner::demo::Api::Running,
        None,
        &mut out,
    )
    .await
    .unwrap();

    let long = "w".repeat(512);
    let weird = [
        "*",
        "?",
        "[",
        "]",
        "\\",
        "{",
        "}",
        "{x}",
        "}{",
        "..",
        "../../etc",
        "a\nb",
        "a b",
        "%",
        long.as_str(),
    ];
    for id in weird {
        let enc = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let replies = [
            app.post("/cache", json!({"key": id, "value": id})).await,
            app.get(&format!("/cache/{enc}")).await,
            app.get(&format!("/cache?pattern={enc}")).await,
            app.delete(&format!("/cache/{enc}")).await,
            app.post(
                "/users",
                json!({"user_id": id, "name": "n", "email": "n@example.com"}),
            )
            .await,
            app.get(&format!("/users/{enc}")).await,
            app.call(
                Method::PATCH,
                &format!("/users/{enc}"),
                Some(json!({"city": "c"})),
            )
            .await,
            app.delete(&format!("/users/{enc}")).await,
            app.get(&format!(
                "/rate-limit/check?user_id={enc}&algorithm=sliding_window"
            ))
            .await,
            app.get(&format!(
                "/rate-limit/check?user_id={enc}&algorithm=token_bucket"
            ))
            .await,
            app.post(&format!("/lock/{enc}/acquire"), json!(null)).await,
            app.get(&format!("/lock/{enc}")).await,
            app.post(&format!("/lock/{enc}/release"), json!({"token": id}))
                .await,
            app.post(&format!("/queue/{enc}"), json!({"id": id, "title": id}))
                .await,
            app.get(&format!("/queue/{enc}/all")).await,
            app.post(&format!("/queue/{enc}/claim"), json!(null)).await,
            app.post(&format!("/queue/{enc}/ack"), json!({"receipt": id}))
                .await,
            app.get(&format!("/queue/{enc}")).await,
            app.delete(&format!("/queue/{enc}")).await,
        ];
        for r in replies {
            assert!(r.status.as_u16() < 500, "{id:?}: {r:?}");
        }
    }
    // The listing shows exactly the cache namespace's keys: none of the foreign ones (whose
    // value is "keep"), whatever their name.
    for i in 0..3 {
        let r = app
            .post("/cache", json!({"key": format!("mine-{i}"), "value": i}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let (mut listed, _) = app.list_cache("pattern=*&count=1000").await;
    listed.sort();
    let mut stored: Vec<String> = redis::cmd("KEYS")
        .arg("demo_api:cache:*")
        .query_async::<Vec<String>>(&mut admin)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k["demo_api:cache:".len()..].to_owned())
        .collect();
    stored.sort();
    assert!(stored.len() >= 3, "{stored:?}");
    assert_eq!(
        listed, stored,
        "the listing is not exactly the cache namespace"
    );
    for k in &listed {
        assert!(!foreign.contains(&k.as_str()), "foreign key {k} listed");
        let value: Option<String> = admin
            .get(format!("demo_api:cache:{k}"))
            .await
            .unwrap_or(None);
        assert_ne!(value.as_deref(), Some("keep"), "{k}");
    }
    assert_eq!(app.post("/stats/reset", json!(null)).await.status, 200);

    // As `admin`: the harness's own connection is the default user, which is off here.
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut admin)
        .await
        .unwrap();
    left.sort();
    let mut expected: Vec<String> = foreign.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(left, expected, "reset must leave exactly the foreign keys");
    for key in foreign {
        let v: String = admin.get(key).await.unwrap();
        assert_eq!(v, "keep", "{key} was changed");
    }
}

fn tls_redis(pki: &Pki) -> RedisProcess {
    let args = pki.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    RedisProcess::start_tls(redis_server_bin().expect("redis-server"), &args)
        .expect("TLS redis-server")
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_a_client_certificate() {
    let pki = Pki::generate();
    let redis = tls_redis(&pki);
    let tls = TlsFiles {
        ca: Some(read(&pki.ca)),
        client: Some((read(&pki.client_cert), read(&pki.client_key))),
    };
    let app = TestApp::with_redis_and_config(redis, |c| c.tls = Some(tls.clone())).await;
    assert!(app.state.config.redis_url.starts_with("rediss://"));
    let r = app.get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        app.post("/cache", json!({"key": "k", "value": "secret"}))
            .await
            .status,
        201
    );
    assert_eq!(app.get("/cache/k").await.body["value"], "secret");
    assert_eq!(app.get("/rate-limit/check?user_id=u").await.status, 200);

    // Without the client certificate the server refuses us.
    let mut config = app.state.config.as_ref().clone();
    config.tls = Some(TlsFiles {
        ca: tls.ca.clone(),
        client: None,
    });
    assert!(
        AppState::connect(config).await.is_err(),
        "connected without a client certificate"
    );

    // A server whose certificate another CA signed is not trusted.
    let other = Pki::generate();
    let mut config = app.state.config.as_ref().clone();
    config.tls = Some(TlsFiles {
        ca: Some(read(&other.ca)),
        client: Some((read(&pki.client_cert), read(&pki.client_key))),
    });
    assert!(
        AppState::connect(config).await.is_err(),
        "trusted a certificate from an unknown CA"
    );
}

#[test]
fn tls_files_are_read_at_start_and_bad_ones_named() {
    let pki = Pki::generate();
    let ca = pki.ca.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let config = shared::Config::from_lookup(|n| match n {
        "REDIS_TLS_CA_FILE" => Some(ca.clone()),
        _ => None,
    })
    .unwrap();
    assert!(
        config
            .tls
            .unwrap()
            .ca
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    let e = shared::Config::from_lookup(|n| {
        (n == "REDIS_TLS_CA_FILE").then(|| "/no/such.pem".to_owned())
    })
    .unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_CA_FILE");
    let e = shared::Config::from_lookup(|n| (n == "REDIS_TLS_CERT_FILE").then(|| cert.clone()))
        .unwrap_err();
    assert_eq!(
        e.variable, "REDIS_TLS_KEY_FILE",
        "a certificate without its key is refused"
    );
}
