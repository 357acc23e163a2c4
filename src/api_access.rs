//! Who may use the API: the bearer tokens in force (`[[api.tokens]]` plus
//! the generated admin token), `api.open`, and the `Host` / `Origin`
//! allow-list. All of it is one immutable `Access`, swapped as a whole on
//! SIGHUP, so tokens rotate without a restart.
//!
//! With no `[[api.tokens]]` and not `api.open`, the first start writes a
//! random admin token to `api.admin_token_file` (mode 0600) and the server
//! prints it once; later starts read it. While that file exists its token
//! is an admin token (delete the file and send SIGHUP to revoke it).

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::{
    split_authority, ApiConfig, ApiToken, Config, HostPattern, OriginPattern, Role,
};

/// The API's access rules at one moment.
#[derive(Debug)]
pub struct Access {
    /// No token needed; everyone is an admin (`api.open = true`).
    pub open: bool,
    /// Every valid token: the configured ones and the generated admin one.
    pub tokens: Vec<ApiToken>,
    hosts: Vec<HostPattern>,
    origins: Vec<OriginPattern>,
}

/// What happened to the generated admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Just written: the secret is shown once.
    Created {
        /// The secret.
        token: String,
        /// Where it is kept.
        path: PathBuf,
    },
    /// Read from an earlier start.
    Existing {
        /// Where it is kept.
        path: PathBuf,
    },
    /// Not used: tokens are configured (and no file exists), or the API is
    /// open.
    None,
}

/// The live access rules, shared by every request.
pub struct ApiAccess {
    current: RwLock<Arc<Access>>,
    listen: SocketAddr,
}

impl ApiAccess {
    /// Build from `[api]`; `listen` is the address actually bound (its port
    /// is in the default allow-list). Creates the admin token when needed.
    pub fn new(api: &ApiConfig, listen: SocketAddr) -> Result<(ApiAccess, AdminToken), String> {
        let (access, admin) = build(api, listen)?;
        Ok((
            ApiAccess {
                current: RwLock::new(Arc::new(access)),
                listen,
            },
            admin,
        ))
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Access> {
        match self.current.read() {
            Ok(a) => Arc::clone(&a),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replace the rules with those of a freshly read `[api]`. On error the
    /// old rules stay.
    pub fn reload(&self, api: &ApiConfig) -> Result<AdminToken, String> {
        let (access, admin) = build(api, self.listen)?;
        let access = Arc::new(access);
        match self.current.write() {
            Ok(mut a) => *a = access,
            Err(poisoned) => *poisoned.into_inner() = access,
        }
        Ok(admin)
    }
}

/// Why a request's `Host` or `Origin` is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl Access {
    /// `Host` must be one of the allowed hosts (a request without one is
    /// not from a browser and passes); `Origin`, when sent, must be an
    /// allowed origin or `http(s)://` an allowed host. This is what stops
    /// another web page (CSRF) or a rebound DNS name from using the API
    /// through a browser.
    pub fn check_host_and_origin(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<(), Refused> {
        if let Some(h) = host {
            let ok = split_authority(h)
                .is_some_and(|(name, port)| self.host_allowed(&name, port.unwrap_or(80)));
            if !ok {
                return Err(Refused(format!(
                    "Host {h:?} is not an address of this API (add it to api.allowed_hosts)"
                )));
            }
        }
        if let Some(o) = origin {
            let ok = OriginPattern::parse(o)
                .is_ok_and(|o| self.origins.contains(&o) || self.host_allowed(&o.host, o.port));
            if !ok {
                return Err(Refused(format!(
                    "requests from the page origin {o:?} are refused (add it to api.allowed_origins)"
                )));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, name: &str, port: u16) -> bool {
        self.hosts.iter().any(|p| p.matches(name, port))
    }
}

fn build(api: &ApiConfig, listen: SocketAddr) -> Result<(Access, AdminToken), String> {
    let mut hosts = Vec::new();
    if let Some((own, _)) = split_authority(&listen.to_string()) {
        hosts.push(HostPattern::exact(&own, listen.port()));
    }
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        hosts.push(HostPattern::exact(name, listen.port()));
    }
    hosts.extend(api.allowed_hosts.iter().cloned());
    let mut tokens = api.tokens.clone();
    let admin = if api.open {
        AdminToken::None
    } else {
        let path = api
            .admin_token_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("data/api-token"));
        let (admin, secret) = admin_token(&path, api.tokens.is_empty())?;
        if let Some(token) = secret {
            tokens.push(ApiToken {
                token,
                token_file: Some(path),
                token_env: None,
                role: Role::Admin,
                agent: None,
            });
        }
        admin
    };
    Ok((
        Access {
            open: api.open,
            tokens,
            hosts,
            origins: api.allowed_origins.clone(),
        },
        admin,
    ))
}

/// Read the generated admin token, or create it when no token is
/// configured. Returns what happened and the secret in force (if any).
fn admin_token(path: &Path, create: bool) -> Result<(AdminToken, Option<String>), String> {
    if let Some(t) = read_admin_token(path)? {
        let existing = AdminToken::Existing {
            path: path.to_path_buf(),
        };
        return Ok((existing, Some(t)));
    }
    if !create {
        return Ok((AdminToken::None, None));
    }
    let token = new_token();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("api.admin_token_file {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        // Another process got there first: use its token.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return admin_token(path, false);
        }
        Err(e) => return Err(format!("api.admin_token_file {}: {e}", path.display())),
    };
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("api.admin_token_file {}: {e}", path.display()))?;
    let created = AdminToken::Created {
        token: token.clone(),
        path: path.to_path_buf(),
    };
    Ok((created, Some(token)))
}

/// The token in the file; `None` when there is no file.
fn read_admin_token(path: &Path) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("api.admin_token_file {}: {e}", path.display())),
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "api.admin_token_file {} is empty: delete it to have a new token generated",
            path.display()
        ));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the API admin token file is readable by other users; chmod 600 it"
            );
        }
    }
    Ok(Some(token.to_string()))
}

/// 256 random bits from the thread's CSPRNG, as 64 hex digits.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the ready line says about the API's tokens: the generated secret
/// (only right after it was created) and where it is kept, or that the API
/// is open. Logs the same without the secret.
pub fn ready_note(admin: &AdminToken, api: &ApiConfig, listen: SocketAddr) -> String {
    match admin {
        AdminToken::Created { token, path } => {
            tracing::warn!(
                file = %path.display(),
                "generated an admin API token (printed once on stdout, kept in the file)"
            );
            format!(" api_token={token} api_token_file={}", path.display())
        }
        AdminToken::Existing { path } => {
            tracing::info!(file = %path.display(), "API admin token file in use");
            format!(" api_token_file={}", path.display())
        }
        AdminToken::None if api.open => {
            tracing::warn!(
                %listen,
                loopback = listen.ip().is_loopback(),
                "api.open = true: the API needs no token; whoever reaches it is an admin"
            );
            " api_open=true".to_string()
        }
        AdminToken::None => String::new(),
    }
}

/// On SIGHUP, re-read the configuration file and put its `[api]` tokens,
/// `open` and allow-lists (and the admin token file) in force. A broken
/// file keeps the old rules and logs why.
pub fn spawn_reload(config_path: PathBuf, access: Arc<ApiAccess>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let path = config_path.clone();
            let a = Arc::clone(&access);
            let result = tokio::task::spawn_blocking(move || {
                let cfg = Config::load(&path).map_err(|e| e.to_string())?;
                a.reload(&cfg.api)
                    .map(|admin| (admin, cfg.api.tokens.len()))
            })
            .await;
            match result {
                Ok(Ok((admin, configured))) => {
                    if let AdminToken::Created { path, .. } = &admin {
                        tracing::warn!(
                            file = %path.display(),
                            "API tokens reloaded: a new admin token was generated into the file"
                        );
                    }
                    tracing::info!(
                        tokens = configured,
                        admin_token_file = matches!(
                            admin,
                            AdminToken::Existing { .. } | AdminToken::Created { .. }
                        ),
                        "API tokens reloaded"
                    );
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "API tokens not reloaded; the old ones stay")
                }
                Err(e) => {
                    tracing::error!(error = %e, "API tokens not reloaded; the old ones stay")
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(extra: &str) -> Access {
        let cfg = Config::parse(
            Path::new("/nonexistent/r.toml"),
            &format!("[api]\nopen = true\n{extra}"),
        )
        .unwrap();
        build(&cfg.api, "127.0.0.1:8080".parse().unwrap())
            .unwrap()
            .0
    }

    #[test]
    fn the_default_allow_list_is_loopback_on_the_apis_port() {
        let a = access("");
        for h in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert_eq!(a.check_host_and_origin(Some(h), None), Ok(()), "{h}");
        }
        assert_eq!(a.check_host_and_origin(None, None), Ok(()));
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost:8081",
            "localhost",
            "",
            "a b",
        ] {
            assert!(a.check_host_and_origin(Some(h), None).is_err(), "{h}");
        }
        let host = Some("127.0.0.1:8080");
        assert_eq!(
            a.check_host_and_origin(host, Some("http://localhost:8080")),
            Ok(())
        );
        for o in [
            "http://evil.example",
            "null",
            "http://localhost:8081",
            "file://",
        ] {
            assert!(a.check_host_and_origin(host, Some(o)).is_err(), "{o}");
        }
    }

    #[test]
    fn configured_hosts_and_origins_are_added() {
        let a = access(
            "allowed_hosts = [\"ringback.example.com\", \"10.0.0.5:8080\"]\n\
             allowed_origins = [\"https://ops.example.com\"]\n",
        );
        for h in [
            "ringback.example.com",
            "ringback.example.com:443",
            "10.0.0.5:8080",
        ] {
            assert_eq!(a.check_host_and_origin(Some(h), None), Ok(()), "{h}");
        }
        assert!(a
            .check_host_and_origin(Some("10.0.0.5:9090"), None)
            .is_err());
        let host = Some("ringback.example.com");
        for o in [
            "https://ringback.example.com",
            "https://ops.example.com",
            "https://ops.example.com:443",
        ] {
            assert_eq!(a.check_host_and_origin(host, Some(o)), Ok(()), "{o}");
        }
        assert!(a
            .check_host_and_origin(host, Some("http://ops.example.com"))
            .is_err());
    }

    #[test]
    fn the_admin_token_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("ringback-admin-{}", std::process::id()));
        let path = dir.join("data").join("api-token");
        let (first, t1) = admin_token(&path, true).unwrap();
        let t1 = t1.unwrap();
        assert_eq!(t1.len(), 64);
        assert!(matches!(first, AdminToken::Created { ref token, .. } if *token == t1));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, t2) = admin_token(&path, true).unwrap();
        assert_eq!(second, AdminToken::Existing { path: path.clone() });
        assert_eq!(t2.as_deref(), Some(t1.as_str()));
        let api = ApiConfig::default();
        let note = ready_note(&second, &api, api.listen);
        assert!(note.ends_with("api-token") && !note.contains(&t1), "{note}");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(admin_token(&path, false).unwrap(), (AdminToken::None, None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
