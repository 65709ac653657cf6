//! The `lock` Lambda function: the lock router under `lambda_http`.
//!
//! The config and Redis handle are built once, in the init phase, and reused by every warm
//! invocation. Reads the variables listed in `shared::config`, with the settings of the
//! secret named by `SECRETS_ARN` (`shared::secrets`) in place of the environment's.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = shared::AppState::new(shared::secrets::config().await?)?;
    let app = shared::http::finish(lock::router(state.clone()), &state.config);
    shared::lambda::run(app).await
}
