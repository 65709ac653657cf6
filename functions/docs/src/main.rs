//! The `docs` Lambda function: `/`, `/openapi.json`, `/docs` and `/redoc` under
//! `lambda_http`. Needs no Redis; reads `RUST_LOG`, `MAX_BODY_BYTES` and `METRICS`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = shared::Config::from_env()?;
    let app = shared::http::finish(docs::router(), &config);
    if config.metrics {
        shared::lambda::run_with_metrics(app).await
    } else {
        shared::lambda::run(app).await
    }
}
