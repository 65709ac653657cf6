//! The `rate-limit` Lambda function: the rate-limit router under `lambda_http`.
//! Reads the variables listed in `shared::config` (or the secret named by `SECRETS_ARN`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(rate_limit::router).await
}
