//! Logging set-up: JSON lines on AWS Lambda (CloudWatch indexes them), readable text
//! elsewhere.
//!
//! On Lambda the function's `LoggingConfig` (template.yaml) is the control: Lambda hands its
//! `ApplicationLogLevel` and `LogFormat` to the function as `AWS_LAMBDA_LOG_LEVEL` and
//! `AWS_LAMBDA_LOG_FORMAT`, which a custom runtime must honour itself. As in
//! `lambda_runtime_api_client`'s `tracing::init_default_subscriber` (1.1, the crate
//! `lambda_http` uses), `AWS_LAMBDA_LOG_LEVEL` wins over `RUST_LOG`. Lambda then drops JSON
//! lines whose `"level"` is below `ApplicationLogLevel`
//! (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>),
//! so the two agree.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber at `info`. Safe to call more than once (later calls do
/// nothing).
pub fn init() {
    init_with_default("info");
}

/// Installs the global subscriber; `default` is the filter when neither
/// `AWS_LAMBDA_LOG_LEVEL` nor `RUST_LOG` is set.
pub fn init_with_default(default: &str) {
    let lookup = |name: &str| std::env::var(name).ok();
    let filter = EnvFilter::new(filter_directive(&lookup, default));
    if json_output(&lookup) {
        let _ = fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .without_time() // CloudWatch stamps every line already
            .with_ansi(false)
            .try_init();
    } else {
        // Colours only for a person at a terminal: a log redirected to a file or piped to
        // another program gets plain text (and `NO_COLOR`, https://no-color.org, is honoured).
        let colour =
            std::io::stdout().is_terminal() && lookup("NO_COLOR").is_none_or(|v| v.is_empty());
        let _ = fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(colour)
            .try_init();
    }
}

/// The filter: Lambda's level when set (`FATAL`, which tracing lacks, is `error`), else
/// `RUST_LOG`, else `default`.
pub fn filter_directive(get: &impl Fn(&str) -> Option<String>, default: &str) -> String {
    match get("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => return level.to_owned(),
        Some("fatal") => return "error".to_owned(),
        _ => {}
    }
    get("RUST_LOG")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// JSON lines on Lambda unless its `LoggingConfig` asks for `Text`; text elsewhere.
pub fn json_output(get: &impl Fn(&str) -> Option<String>) -> bool {
    if get("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return false;
    }
    !get("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::lookup_in as env;

    #[test]
    fn lambda_logging_config_is_honoured() {
        assert_eq!(filter_directive(&env(&[]), "info"), "info");
        assert_eq!(
            filter_directive(&env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]), "info"),
            "debug"
        );
        assert_eq!(
            filter_directive(&env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]), "info"),
            "error"
        );
        assert_eq!(
            filter_directive(
                &env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "warn")]),
                "info"
            ),
            "debug",
            "the LoggingConfig wins, as in lambda_runtime"
        );
        assert_eq!(
            filter_directive(&env(&[("RUST_LOG", "warn")]), "info"),
            "warn"
        );
        assert!(!json_output(&env(&[])));
        assert!(json_output(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "f")])));
        assert!(!json_output(&env(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text")
        ])));
    }
}
