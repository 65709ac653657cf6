//! The `users` Lambda function: the users router under `lambda_http`.
//! Reads the variables listed in `shared::config` (or the secret named by `SECRETS_ARN`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(users::router).await
}
