//! Logging set-up: JSON lines on AWS Lambda (CloudWatch indexes them), readable text
//! elsewhere. The level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber at `info`. Safe to call more than once (later calls do
/// nothing).
pub fn init() {
    init_with_default("info");
}

/// Installs the global subscriber; `default` is the filter when `RUST_LOG` is unset.
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        let _ = fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .without_time() // CloudWatch stamps every line already
            .with_ansi(false)
            .try_init();
    } else {
        let _ = fmt().with_env_filter(filter).with_target(false).try_init();
    }
}
