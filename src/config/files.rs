//! Where ringback reads dialplans and prompts from, and where it stores its
//! data. Relative paths are resolved against the configuration file's
//! directory by `Config::parse`.

use std::path::PathBuf;

use serde::Deserialize;

/// Dialplan directory and reload settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialplansConfig {
    /// Directory of `*.toml` dialplans.
    pub dir: PathBuf,
    /// Reload automatically when a file in `dir` or the prompts directory changes.
    pub watch: bool,
}

impl Default for DialplansConfig {
    fn default() -> Self {
        DialplansConfig {
            dir: PathBuf::from("dialplans"),
            watch: true,
        }
    }
}

/// Prompt directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Directory of `<name>.wav` prompts (any rate and channel count).
    pub dir: PathBuf,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
        }
    }
}

/// The store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created on first run) or `postgres://…`.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/ringback.db".into(),
        }
    }
}

/// The customer directory (`[customers]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomersConfig {
    /// How often the server checks whether the stored directory changed
    /// beside it (a `ringback customers import`, another node) and reloads
    /// its in-memory copy; 0: only at start and through its own API.
    pub refresh_secs: u64,
}

impl Default for CustomersConfig {
    fn default() -> Self {
        CustomersConfig { refresh_secs: 10 }
    }
}
