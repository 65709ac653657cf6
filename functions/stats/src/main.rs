//! The `stats` Lambda function: the stats router under `lambda_http`.
//!
//! The config and Redis handle are built once, in the init phase, and reused by every warm
//! invocation. Reads the variables listed in `shared::config`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::AppState::new(shared::Config::from_env()?)?;
    let app = shared::http::finish(stats::router(state.clone()), &state.config);
    shared::lambda::run(app).await
}
