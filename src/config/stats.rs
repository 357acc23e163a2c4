//! `[stats]`: what "today" means for the live figures (`/api/v1/stats`, the
//! dashboard): the local day of one IANA time zone.

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

/// Settings of today's figures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// IANA zone whose local midnight starts "today" (`"Europe/Berlin"`);
    /// UTC by default. A misspelled name is a `file:line:col` error.
    #[serde(deserialize_with = "timezone")]
    pub timezone: Tz,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig { timezone: Tz::UTC }
    }
}

/// An IANA name, checked where it is read so the error points at the value.
fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(d)?;
    ringback_calendar::parse_timezone(&name).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn timezone_defaults_to_utc_and_takes_iana_names() {
        let c = Config::parse(Path::new("r.toml"), "").expect("empty config");
        assert_eq!(c.stats.timezone, chrono_tz::UTC);
        let c = Config::parse(
            Path::new("r.toml"),
            "[stats]\ntimezone = \"Europe/Berlin\"\n",
        )
        .expect("Berlin");
        assert_eq!(c.stats.timezone, chrono_tz::Europe::Berlin);
    }

    #[test]
    fn unknown_timezone_is_reported_at_its_value() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[stats]\ntimezone = \"Europe/Berln\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.toml:2:12: unknown timezone `Europe/Berln`"),
            "{e}"
        );
        let e = Config::parse(Path::new("r.toml"), "[stats]\ntime_zone = \"UTC\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r.toml:2:1: unknown field `time_zone`"),
            "{e}"
        );
    }
}
