//! Secrets kept out of the configuration file, so the file can be
//! committed: every secret key (`[[api.tokens]] token`, a trunk's
//! `password`, an agent's `password`) may instead be given as
//! `<key>_file = "path"` (read at start-up and on reload; relative to the
//! configuration file; one trailing newline dropped) or `<key>_env =
//! "NAME"` (an environment variable). Exactly one of the three.

use std::path::{Path, PathBuf};

use super::Config;

/// Read every `*_file` and `*_env` secret into its key; the error names the
/// owner, the key and the cause (`trunk "x": password_file /p: No such
/// file or directory`).
pub(super) fn resolve_all(cfg: &mut Config, base: &Path) -> Result<(), String> {
    let t = &mut cfg.trunk;
    resolve(
        base,
        "trunk",
        "password",
        Secret {
            value: &mut t.password,
            file: &mut t.password_file,
            env: &t.password_env,
        },
    )?;
    for (name, t) in &mut cfg.trunks {
        resolve(
            base,
            &format!("trunk {name:?}"),
            "password",
            Secret {
                value: &mut t.password,
                file: &mut t.password_file,
                env: &t.password_env,
            },
        )?;
    }
    for (name, a) in &mut cfg.agents {
        resolve(
            base,
            &format!("agent {name:?}"),
            "password",
            Secret {
                value: &mut a.password,
                file: &mut a.password_file,
                env: &a.password_env,
            },
        )?;
    }
    let c = &mut cfg.cluster;
    resolve(
        base,
        "cluster",
        "secret",
        Secret {
            value: &mut c.secret,
            file: &mut c.secret_file,
            env: &c.secret_env,
        },
    )?;
    for (i, t) in cfg.api.tokens.iter_mut().enumerate() {
        let mut value = (!t.token.is_empty()).then(|| std::mem::take(&mut t.token));
        resolve(
            base,
            &format!("api.tokens[{i}]"),
            "token",
            Secret {
                value: &mut value,
                file: &mut t.token_file,
                env: &t.token_env,
            },
        )?;
        t.token = value.unwrap_or_default();
    }
    Ok(())
}

/// One secret's three ways of being given.
struct Secret<'a> {
    value: &'a mut Option<String>,
    file: &'a mut Option<PathBuf>,
    env: &'a Option<String>,
}

fn resolve(base: &Path, owner: &str, key: &str, s: Secret<'_>) -> Result<(), String> {
    let given = usize::from(s.value.is_some())
        + usize::from(s.file.is_some())
        + usize::from(s.env.is_some());
    if given > 1 {
        return Err(format!(
            "{owner}: set only one of `{key}`, `{key}_file` and `{key}_env`"
        ));
    }
    if let Some(f) = s.file.as_mut() {
        *f = super::resolve(base, f);
        let text = std::fs::read_to_string(&*f)
            .map_err(|e| format!("{owner}: {key}_file {}: {}", f.display(), io_message(&e)))?;
        let secret = text.strip_suffix('\n').unwrap_or(&text);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            return Err(format!(
                "{owner}: {key}_file {}: the file is empty",
                f.display()
            ));
        }
        *s.value = Some(secret.to_string());
    }
    if let Some(name) = s.env {
        let v = std::env::var(name).map_err(|e| {
            let why = match e {
                std::env::VarError::NotPresent => "not set",
                std::env::VarError::NotUnicode(_) => "not valid UTF-8",
            };
            format!("{owner}: {key}_env {name}: {why}")
        })?;
        if v.is_empty() {
            return Err(format!("{owner}: {key}_env {name}: the variable is empty"));
        }
        *s.value = Some(v);
    }
    Ok(())
}

/// The OS's words without Rust's ` (os error 2)` suffix.
fn io_message(e: &std::io::Error) -> String {
    let m = e.to_string();
    match m.find(" (os error ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_files_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("ringback-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trunk-pw"), "s3cret\n").unwrap();
        std::fs::write(dir.join("token"), "tok-0123456789\r\n").unwrap();
        std::env::set_var("RINGBACK_TEST_SECRET_ALICE", "alice-pw");
        let text = r#"
[trunk]
address = "192.0.2.1:5060"
username = "acct"
password_file = "trunk-pw"

[agents.alice]
password_env = "RINGBACK_TEST_SECRET_ALICE"

[[api.tokens]]
token_file = "token"
role = "admin"
"#;
        let c = Config::parse(&dir.join("ringback.toml"), text).unwrap();
        assert_eq!(c.trunk.password.as_deref(), Some("s3cret"));
        assert_eq!(c.agents["alice"].password.as_deref(), Some("alice-pw"));
        assert_eq!(c.api.tokens[0].token, "tok-0123456789");
        assert_eq!(
            c.api.tokens[0].token_file.as_deref(),
            Some(&*dir.join("token"))
        );

        let e = Config::parse(
            &dir.join("config.toml"),
            "[trunks.x]\naddress = \"192.0.2.2:5060\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!(
                "{}: trunk \"x\": password_file /nonexistent/pw: No such file or directory",
                dir.join("config.toml").display()
            )
        );
        let e = Config::parse(
            Path::new("r.toml"),
            "[agents.bob]\npassword_env = \"RINGBACK_TEST_SECRET_UNSET\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "r.toml: agent \"bob\": password_env RINGBACK_TEST_SECRET_UNSET: not set"
        );
        let e = Config::parse(
            Path::new("r.toml"),
            "[[api.tokens]]\ntoken = \"a\"\ntoken_env = \"B\"\nrole = \"admin\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api.tokens[0]: set only one of"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
