//! `[languages.<tag>]`: what a caller's language means besides its prompt
//! set (`prompts/<tag>/`, which needs no configuration): the agent skill a
//! call in that language requires in every queue.
//!
//! ```toml
//! [languages.es]
//! skill = "spanish"   # agents need `skills = { spanish = N }`, N ≥ level
//! level = 1           # 1–10, default 1
//! ```
//!
//! A tag applies to its more specific forms too: `[languages.es]` covers
//! callers in `es-MX`, unless `[languages.es-mx]` says otherwise.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One language's routing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    /// The agent skill every queue call in this language requires (none:
    /// any agent of the queue).
    pub skill: Option<String>,
    /// The skill's minimum level, 1–10.
    #[serde(default = "default_level")]
    pub level: u8,
}

fn default_level() -> u8 {
    1
}

/// Tags must be tags and levels in range; the skill must be held by at
/// least one agent, or such callers would wait for nobody.
pub(super) fn validate(cfg: &super::Config) -> Result<(), String> {
    for (tag, l) in &cfg.languages {
        ringback_customers::check_language(tag)
            .map_err(|e| format!("[languages.{tag}]: {}", e.reason))?;
        if !(1..=10).contains(&l.level) {
            return Err(format!(
                "languages.{tag}.level = {}: levels are 1 to 10",
                l.level
            ));
        }
        let Some(skill) = &l.skill else { continue };
        let held = cfg
            .agents
            .values()
            .any(|a| a.skills.get(skill).is_some_and(|v| *v >= l.level));
        if !held {
            return Err(format!(
                "languages.{tag}.skill = \"{skill}\": no agent has that skill at level {} or above \
                 (add `skills = {{ {skill} = {} }}` to an [agents.*] entry)",
                l.level, l.level
            ));
        }
    }
    Ok(())
}

/// The skill each language requires, keyed by lower-case tag (what the
/// call core looks tags up by).
pub fn language_skills(cfg: &super::Config) -> BTreeMap<String, (String, u8)> {
    cfg.languages
        .iter()
        .filter_map(|(tag, l)| {
            let skill = l.skill.clone()?;
            Some((ringback_dialplan::language::key(tag), (skill, l.level)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("r.toml"), text).map_err(|e| e.0)
    }

    const AGENT: &str = "[agents.ana]\npassword = \"x\"\nskills = { spanish = 4 }\n";

    #[test]
    fn a_language_skill_is_keyed_by_lower_case_tag() {
        let cfg = parse(&format!(
            "{AGENT}[languages.es-MX]\nskill = \"spanish\"\nlevel = 3\n[languages.de]\n"
        ))
        .expect("valid");
        let skills = super::language_skills(&cfg);
        assert_eq!(skills.get("es-mx"), Some(&("spanish".to_string(), 3)));
        assert_eq!(skills.get("de"), None, "no skill: any agent");
    }

    #[test]
    fn bad_tags_levels_and_unheld_skills_are_refused_by_name() {
        let e = parse("[languages.\"english!\"]\n").expect_err("bad tag");
        assert!(e.contains("[languages.english!]"), "{e}");
        let e = parse(&format!(
            "{AGENT}[languages.es]\nskill = \"spanish\"\nlevel = 11\n"
        ))
        .expect_err("level");
        assert!(e.contains("languages.es.level = 11"), "{e}");
        let e = parse(&format!(
            "{AGENT}[languages.es]\nskill = \"spanish\"\nlevel = 5\n"
        ))
        .expect_err("nobody that good");
        assert!(e.contains("no agent has that skill at level 5"), "{e}");
        let e = parse("[languages.fr]\nskill = \"french\"\nleve = 1\n").expect_err("typo");
        assert!(e.contains("r.toml:3:1"), "{e}");
    }
}
