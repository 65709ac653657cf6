//! One set of settings: the README's Settings table, `local-runner --help` and what `Config`
//! actually reads must name the same variables, so that none is documented but ignored or
//! read but undocumented.

use std::{cell::RefCell, collections::BTreeSet, process::Command};

use api_tests::binary::{self, readme};
use shared::Config;

type Names = BTreeSet<String>;

/// The runner's own settings: where it listens. The functions have no such thing.
const RUNNER_ONLY: [&str; 3] = ["PORT", "BIND", "DEFAULT_REDIS_PORT"];

/// Every variable `Config::from_lookup` asks for, in each `REDIS_MODE`.
fn read_by_config() -> Names {
    let asked = RefCell::new(Names::new());
    for mode in ["standalone", "cluster", "sentinel"] {
        let _ = Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            match name {
                "REDIS_MODE" => Some(mode.to_owned()),
                "REDIS_SENTINELS" => Some("127.0.0.1:26379".to_owned()),
                _ => None,
            }
        });
    }
    asked.into_inner()
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

    // The template's side (which parameters reach which function, secrets through Secrets
    // Manager) is checked by tests/tests/template.rs.
}
