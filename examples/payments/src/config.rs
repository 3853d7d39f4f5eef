//! The payments service's own settings, on top of the kit's (`tonic_blueprint::config`):
//! the limits of `WatchPayments`. Environment variables only, checked like the kit's: every
//! problem reported at once, each naming its variable.
//!
//! ```
//! use payments_example::config::watch_config;
//!
//! let config = watch_config([("MAX_WATCHERS_PER_USER", "4")]).expect("valid");
//! assert_eq!(config.max_watchers_per_user, 4);
//! assert_eq!(config.max_watchers, 5_000);
//!
//! let error = watch_config([("MAX_WATCHERS", "many"), ("WATCH_HISTORY", "0")]).unwrap_err();
//! assert_eq!(error.problems.len(), 2);
//! ```

use crate::hub::WatchConfig;
use tonic_blueprint::config::{ConfigError, Loader};

/// One of the service's own variables.
#[derive(Clone, Copy, Debug)]
pub struct ServiceVariable {
    /// Its name.
    pub name: &'static str,
    /// Its default.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// The service's own variables, in `export.sh` after the kit's.
pub const SERVICE_VARIABLES: &[ServiceVariable] = &[
    ServiceVariable {
        name: "MAX_WATCHERS",
        default: "5000",
        help: "WatchPayments streams open on one replica at once; past it RESOURCE_EXHAUSTED. Keep it below MAX_IN_FLIGHT, which counts open streams too",
    },
    ServiceVariable {
        name: "MAX_WATCHERS_PER_USER",
        default: "16",
        help: "WatchPayments streams one caller may have open on one replica; past it RESOURCE_EXHAUSTED",
    },
    ServiceVariable {
        name: "WATCH_HISTORY",
        default: "4096",
        help: "recent payments a replica keeps in memory for its watchers: how far one may fall behind (then RESOURCE_EXHAUSTED, resume with after_sequence) and how far back a resume needs no table read",
    },
];

/// The limits of `WatchPayments` from `vars` (the process environment in the binary), each
/// unset variable at its default.
pub fn watch_config<I, K, V>(vars: I) -> Result<WatchConfig, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let vars: Vec<(K, V)> = vars.into_iter().collect();
    let mut problems = Vec::new();
    let mut read = |name: &str| -> usize {
        let Some(variable) = SERVICE_VARIABLES.iter().find(|v| v.name == name) else {
            return 0;
        };
        let value = vars
            .iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map_or(variable.default, |(_, v)| v.as_ref())
            .trim();
        let value = if value.is_empty() {
            variable.default
        } else {
            value
        };
        match value.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(format!(
                    "{name}={value:?}: not a whole number greater than 0"
                ));
                0
            }
        }
    };
    let config = WatchConfig {
        max_watchers: read("MAX_WATCHERS"),
        max_watchers_per_user: read("MAX_WATCHERS_PER_USER"),
        history: read("WATCH_HISTORY"),
    };
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// The service's `export.sh`: the kit's variables with the service's defaults, then its own.
pub fn export_sh() -> String {
    let mut out = crate::with_defaults(Loader::from_pairs(Vec::<(String, String)>::new()))
        .service_export_sh();
    out.push_str("\n# The payments service's own settings (environment variables only).\n");
    for var in SERVICE_VARIABLES {
        out.push_str(&format!(
            "\n# {}\nexport {}=\"{}\"\n",
            var.help, var.name, var.default
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_hubs() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            watch_config(none).expect("defaults"),
            WatchConfig::default()
        );
    }

    #[test]
    fn every_problem_names_its_variable() {
        let error = watch_config([
            ("MAX_WATCHERS", "-1"),
            ("MAX_WATCHERS_PER_USER", "0"),
            ("WATCH_HISTORY", "lots"),
        ])
        .expect_err("invalid");
        let text = error.to_string();
        for name in ["MAX_WATCHERS=", "MAX_WATCHERS_PER_USER=", "WATCH_HISTORY="] {
            assert!(text.contains(name), "{text}");
        }
        // An empty value is the default.
        let config = watch_config([("WATCH_HISTORY", " ")]).expect("valid");
        assert_eq!(config.history, 4096);
    }
}
