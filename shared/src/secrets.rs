//! Secrets read once per cold start from AWS Secrets Manager, through the AWS Parameters and
//! Secrets Lambda Extension, so `REDIS_URL` (with its password) and `API_KEY` never sit in a
//! function's environment variables, where anyone allowed to read the function's
//! configuration would see them.
//!
//! The extension answers on `localhost:2773` (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`
//! changes it), `GET /secretsmanager/get?secretId=<id>` with the header
//! `X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN`, and no SDK is needed
//! (<https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets_lambda.html>).
//! The template's secret is a JSON object of setting names to values
//! (`{"REDIS_URL": "...", "API_KEY": "...", "REDIS_SENTINEL_PASSWORD": "..."}`), which
//! [`config`] lays over the environment.

use std::{collections::HashMap, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::config::Config;

/// The variable naming the secret (its ARN) in a function's environment.
pub const SECRETS_ARN: &str = "SECRETS_ARN";

/// Why the secret could not be read; never holds the secret itself.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the secret {secret_id} through the Parameters and Secrets extension on port {port}: {cause}"
)]
pub struct SecretsError {
    /// The secret's id (its ARN).
    pub secret_id: String,
    /// The extension's port.
    pub port: u16,
    /// What went wrong.
    pub cause: String,
}

/// The configuration of a function: its environment, with the settings held by the secret
/// named in `SECRETS_ARN` (when set) in place of any variable of the same name.
pub async fn config() -> Result<Config, Box<dyn std::error::Error + Send + Sync>> {
    let env = |name: &str| std::env::var(name).ok();
    let overlay = match env(SECRETS_ARN).filter(|v| !v.is_empty()) {
        Some(arn) => {
            let port = env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(2773);
            let token = env("AWS_SESSION_TOKEN").unwrap_or_default();
            fetch(port, &arn, &token).await?
        }
        None => HashMap::new(),
    };
    Ok(Config::from_lookup(|name| {
        overlay.get(name).cloned().or_else(|| env(name))
    })?)
}

/// Reads secret `secret_id` from the extension on `127.0.0.1:port`: its `SecretString`,
/// a JSON object of string values.
pub async fn fetch(
    port: u16,
    secret_id: &str,
    token: &str,
) -> Result<HashMap<String, String>, SecretsError> {
    let fail = |cause: String| SecretsError {
        secret_id: secret_id.to_owned(),
        port,
        cause,
    };
    let id: String = form_urlencoded::byte_serialize(secret_id.as_bytes()).collect();
    // HTTP/1.0: the answer comes whole, without chunked encoding, and the connection closes.
    let request = format!(
        "GET /secretsmanager/get?secretId={id} HTTP/1.0\r\nHost: localhost\r\n\
         X-Aws-Parameters-Secrets-Token: {token}\r\n\r\n"
    );
    let mut stream = connect(port).await.map_err(|e| fail(e.to_string()))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| fail("no answer within 5 s".to_owned()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("not an HTTP answer".to_owned()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        // The body may echo the request, never the secret: keep it short anyway.
        let excerpt: String = body.chars().take(200).collect();
        return Err(fail(format!("status {status}: {excerpt}")));
    }
    let envelope: serde_json::Value =
        serde_json::from_str(body).map_err(|e| fail(format!("answer is not JSON ({e})")))?;
    let secret = envelope["SecretString"]
        .as_str()
        .ok_or_else(|| fail("the answer has no SecretString".to_owned()))?;
    let settings: HashMap<String, String> = serde_json::from_str(secret).map_err(|_| {
        fail("the secret is not a JSON object of strings like {\"REDIS_URL\": \"...\"}".to_owned())
    })?;
    Ok(settings)
}

/// Connects to the extension, waiting a little for it to listen (it starts with the
/// execution environment, before the function's own init, but a retry costs nothing).
async fn connect(port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..20 {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no attempt made")))
}
