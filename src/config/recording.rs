//! `[recording]`: where call recordings are written and how long they are
//! kept. Which calls are recorded is said per queue and per agent
//! (`record = true` in `[queues.NAME]` and `[agents.NAME]`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Call recording storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Directory of the WAV files (relative paths are resolved against the
    /// configuration file's directory; default: `recordings` in the data
    /// directory, beside the SQLite file). After `Config::parse` it is
    /// always set.
    pub dir: Option<PathBuf>,
    /// Days a recording (file and row) is kept; 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: None,
            retention_days: 90,
        }
    }
}

impl RecordingConfig {
    /// The recordings directory (as resolved at load).
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("recordings"))
    }
}

/// Resolve `[recording] dir` against the configuration file's directory,
/// defaulting to `<data dir>/recordings` (the SQLite file's directory, or
/// `data/` beside the configuration file with PostgreSQL).
pub(super) fn resolve_paths(cfg: &mut super::Config, base: &Path) {
    let dir = match cfg.recording.dir.take() {
        Some(d) => super::resolve(base, &d),
        None => data_dir(base, &cfg.database.url).join("recordings"),
    };
    cfg.recording.dir = Some(dir);
}

/// The data directory: where the SQLite file is, else `base/data`.
fn data_dir(base: &Path, database_url: &str) -> PathBuf {
    let sqlite = database_url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(":memory:"));
    match sqlite.and_then(|p| Path::new(p).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => super::resolve(base, dir),
        _ => base.join("data"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::Config;

    #[test]
    fn the_default_directory_is_beside_the_database() {
        let c = Config::parse(Path::new("/etc/ringback/ringback.toml"), "").unwrap();
        assert_eq!(
            c.recording.dir(),
            PathBuf::from("/etc/ringback/data/recordings")
        );
        assert_eq!(c.recording.retention_days, 90);
        let c = Config::parse(
            Path::new("/etc/ringback/ringback.toml"),
            "[recording]\ndir = \"rec\"\nretention_days = 0\n",
        )
        .unwrap();
        assert_eq!(c.recording.dir(), PathBuf::from("/etc/ringback/rec"));
        assert_eq!(c.recording.retention_days, 0);
        let c = Config::parse(
            Path::new("/etc/ringback/ringback.toml"),
            "[database]\nurl = \"postgres://x/y\"\n",
        )
        .unwrap();
        assert_eq!(
            c.recording.dir(),
            PathBuf::from("/etc/ringback/data/recordings")
        );
    }

    #[test]
    fn queues_and_agents_say_record() {
        let c = Config::parse(
            Path::new("r.toml"),
            "[queues.q]\nrecord = true\nrecord_announcement = \"recording-notice\"\n\
             [agents.a]\npassword = \"x\"\nrecord = true\n",
        )
        .unwrap();
        assert!(c.queues["q"].record);
        assert_eq!(
            c.queues["q"].record_announcement.as_deref(),
            Some("recording-notice")
        );
        assert!(c.agents["a"].record);
        let e = Config::parse(Path::new("r.toml"), "[recording]\nretention = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `retention`"), "{e}");
    }
}
