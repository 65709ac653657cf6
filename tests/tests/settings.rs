//! One set of settings: the README's Settings table, `local-runner --help`, what `Config`
//! actually reads and what `template.yaml` passes to the functions must name the same
//! variables, so that none is documented but ignored, read but undocumented, or asked for by
//! `sam deploy` and then dropped.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use api_tests::binary::{self, readme};
use shared::config::SETTINGS;

type Names = BTreeSet<String>;

/// The runner's own settings: where it listens. The functions have no such thing.
const RUNNER_ONLY: [&str; 3] = ["PORT", "BIND", "DEFAULT_REDIS_PORT"];

/// Every variable `Config::from_lookup` reads: the declared settings (a unit test of
/// `shared::config` holds the two together).
fn read_by_config() -> Names {
    SETTINGS.iter().map(|s| s.variable.to_owned()).collect()
}

/// The `[env: NAME]` of every option in `local-runner --help`.
fn runner_help() -> Names {
    let out = Command::new(binary::runner_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split([']', '=']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_help_template_and_config_name_the_same_settings() {
    let table = readme::settings();
    let documented: Names = table.iter().map(|s| s.variable.clone()).collect();
    let runner_only: Names = RUNNER_ONLY.iter().map(|s| (*s).to_owned()).collect();
    let config: Names = read_by_config();

    let mut served = config;
    served.extend(runner_only.iter().cloned());
    assert_eq!(
        documented, served,
        "README Settings table vs Config + {RUNNER_ONLY:?}"
    );
    assert_eq!(
        runner_help(),
        served,
        "local-runner --help vs Config + {RUNNER_ONLY:?}"
    );
}

/// The README's defaults are the declared ones (`shared::config::SETTINGS`, which a unit
/// test holds to what `Config` applies): a literal where one is declared, else none or the
/// name of the setting it falls back to (`REDIS_CLUSTER_NODES`: `REDIS_URL`).
#[test]
fn readme_defaults_are_the_declared_defaults() {
    let table = readme::settings();
    for setting in SETTINGS {
        let row = table
            .iter()
            .find(|row| row.variable == setting.variable)
            .unwrap_or_else(|| panic!("{} is not in the README's Settings", setting.variable));
        match setting.default {
            Some(default) => assert_eq!(
                row.default.as_deref(),
                Some(default),
                "README Settings: the default of {}",
                setting.variable
            ),
            None => assert!(
                row.default
                    .as_ref()
                    .is_none_or(|d| SETTINGS.iter().any(|s| s.variable == d)),
                "README Settings gives {} the default {:?}, SETTINGS none",
                setting.variable,
                row.default
            ),
        }
    }
}

/// Template parameters that configure the deployment rather than a setting of the program;
/// each must be in the README's `sam deploy --guided` table instead.
const DEPLOY_ONLY: [&str; 10] = [
    "SecretsExtensionLayerArn",
    "SubnetIds",
    "SecurityGroupIds",
    "ThrottlingRateLimit",
    "ThrottlingBurstLimit",
    "ReservedConcurrency",
    "LogLevel",
    "LogRetentionDays",
    "AlarmTopicArn",
    // Applied by API Gateway (the HTTP API's CorsConfiguration), not by a function; it is
    // also the SAM column of CORS_ALLOW_ORIGINS, checked below.
    "CorsAllowOrigins",
];

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
}

/// The names under the template's top-level `Parameters:`.
fn template_parameters(text: &str) -> Names {
    text.lines()
        .skip_while(|l| *l != "Parameters:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| !name.starts_with([' ', '#']))
        .map(str::to_owned)
        .collect()
}

/// `{variable: parameter}` of each function's `Environment: Variables:` block, one map per
/// function, in template order.
fn function_variables(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while lines.by_ref().any(|l| l.trim() == "Variables:") {
        let block: BTreeMap<String, String> = lines
            .clone()
            .take_while(|l| l.starts_with("          "))
            .filter_map(|l| {
                let (name, value) = l.trim().split_once(": ")?;
                Some((name.to_owned(), value.strip_prefix("!Ref ")?.to_owned()))
            })
            .collect();
        out.push(block);
    }
    out
}

/// `{variable: parameter}` of the secret's `SecretString` (`"NAME":"${Parameter}"` pairs).
fn secret_variables(text: &str) -> BTreeMap<String, String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("SecretString: "))
        .expect("the template's secret has a SecretString");
    line.split('"')
        .collect::<Vec<_>>()
        .windows(4)
        .filter(|w| w[2] == ":" && w[3].starts_with("${"))
        .map(|w| (w[1].to_owned(), w[3][2..w[3].len() - 1].to_owned()))
        .collect()
}

/// The first cells of the README's `sam deploy --guided` table (`| parameter | answer |`).
fn readme_deploy_parameters() -> Names {
    let text = readme::text();
    let table = text
        .split("| parameter | answer |")
        .nth(1)
        .expect("the README's sam deploy --guided table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let first = l.trim_matches('|').split('|').next().unwrap_or_default();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_template_passes_every_documented_setting_and_only_those() {
    let text = template();
    let parameters = template_parameters(&text);
    assert!(
        parameters.contains("RedisUrl") && parameters.len() > 10,
        "{parameters:?}"
    );
    let functions = function_variables(&text);
    assert_eq!(
        functions.len(),
        6,
        "six functions talk to Redis (docs does not)"
    );
    for (i, f) in functions.iter().enumerate() {
        assert_eq!(
            f, &functions[0],
            "function #{i} has other variables than the first"
        );
    }
    let secret = secret_variables(&text);
    assert!(secret.contains_key("REDIS_URL") && secret.contains_key("API_KEY"));

    // What reaches a function: its environment (SECRETS_ARN aside, which names the secret)
    // and the secret laid over it.
    let mut reaches: BTreeMap<String, String> = functions[0].clone();
    reaches.remove(shared::secrets::SECRETS_ARN);
    for (variable, parameter) in &secret {
        assert!(
            reaches
                .insert(variable.clone(), parameter.clone())
                .is_none(),
            "{variable} is both in the environment and in the secret"
        );
    }

    let table = readme::settings();
    let config = read_by_config();
    for (variable, parameter) in &reaches {
        assert!(
            config.contains(variable),
            "the template sets {variable}, which Config never reads"
        );
        assert!(
            parameters.contains(parameter),
            "{variable} refers to no parameter {parameter}"
        );
        let row = table.iter().find(|s| &s.variable == variable);
        assert_eq!(
            row.and_then(|s| s.sam_parameter.as_deref()),
            Some(parameter.as_str()),
            "README Settings: the SAM column of {variable} must be `{parameter}`"
        );
    }
    let deploy_only: Names = DEPLOY_ONLY.iter().map(|s| (*s).to_owned()).collect();
    for setting in &table {
        let Some(parameter) = &setting.sam_parameter else {
            continue;
        };
        let applied = reaches.get(&setting.variable) == Some(parameter)
            || (deploy_only.contains(parameter) && setting.variable == "CORS_ALLOW_ORIGINS");
        assert!(
            applied,
            "README Settings says `{parameter}` sets {} but the template passes it to no function",
            setting.variable
        );
    }

    // Every parameter is either a setting of the program or a documented deploy choice, and
    // the template uses it.
    let setting_parameters: Names = reaches.values().cloned().collect();
    let deploy_documented = readme_deploy_parameters();
    for parameter in &parameters {
        assert!(
            setting_parameters.contains(parameter) || deploy_only.contains(parameter),
            "template parameter {parameter} sets nothing: pass it to the functions or list it in DEPLOY_ONLY"
        );
        if deploy_only.contains(parameter) {
            assert!(
                deploy_documented.contains(parameter),
                "{parameter} is missing from the README's sam deploy --guided table"
            );
        }
        let used = text.matches(&format!("!Ref {parameter}")).count()
            + text.matches(&format!("${{{parameter}}}")).count();
        assert!(used > 0, "template parameter {parameter} is never used");
    }
}
