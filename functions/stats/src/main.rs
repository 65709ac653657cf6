//! The `stats` Lambda function: the stats router under `lambda_http`.
//! Reads the variables listed in `shared::config` (or the secret named by `SECRETS_ARN`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(stats::router).await
}
