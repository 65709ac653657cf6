//! The runner's flags for the shared settings, built from [`shared::config::SETTINGS`]: each
//! setting is a flag named after its variable (`KEY_PREFIX`: `--key-prefix`) that also reads
//! the variable, with the declared description and default in `--help`. Adding a setting to
//! that list adds its flag; nothing here names one.
//!
//! No default is given to clap: an unset setting stays unset, so [`shared::Config`] applies
//! its own default and knows what was given (`REDIS_URL` unset lets the runner look for, or
//! start, a Redis of its own).

use std::collections::BTreeMap;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use shared::config::{SETTINGS, Setting};

/// The shared settings given on the command line or in the environment, by variable name.
#[derive(Debug, Default, Clone)]
pub struct Settings(BTreeMap<&'static str, String>);

impl Settings {
    /// The value of a setting, by variable name, as [`shared::Config::from_lookup`] asks.
    pub fn lookup(&self, variable: &str) -> Option<String> {
        self.0.get(variable).cloned()
    }
}

/// `KEY_PREFIX` -> `key-prefix`.
fn flag(setting: &Setting) -> String {
    setting.variable.to_ascii_lowercase().replace('_', "-")
}

fn arg(setting: &Setting) -> Arg {
    let help = match setting.default {
        Some(default) => format!("{} [default: {default}]", setting.help),
        None => format!("{}.", setting.help),
    };
    Arg::new(setting.variable)
        .long(flag(setting))
        .env(setting.variable)
        .value_name(setting.variable)
        .hide_env_values(setting.secret)
        .help(help)
}

impl Args for Settings {
    fn augment_args(cmd: Command) -> Command {
        SETTINGS
            .iter()
            .fold(cmd, |cmd, setting| cmd.arg(arg(setting)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Settings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = Self::default();
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in SETTINGS {
            if let Some(value) = matches.get_one::<String>(setting.variable) {
                self.0.insert(setting.variable, value.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn every_setting_is_a_flag_read_as_its_variable() {
        let mut argv = vec!["local-runner".to_owned()];
        for setting in SETTINGS {
            argv.push(format!("--{}={}", flag(setting), setting.variable.len()));
        }
        let cli = Cli::try_parse_from(argv).unwrap();
        for setting in SETTINGS {
            assert_eq!(
                cli.settings.lookup(setting.variable),
                Some(setting.variable.len().to_string())
            );
        }
        let none = Cli::try_parse_from(["local-runner"]).unwrap();
        assert_eq!(none.settings.lookup("KEY_PREFIX"), None);
    }
}
