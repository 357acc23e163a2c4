//! SIP over TLS (RFC 3261 §26, RFC 5630): the listener's certificate
//! (re-read on SIGHUP without touching open connections) and the client
//! side towards trunks (verified against the bundled public roots, a
//! trunk's own CA file, or, when a lab says so, not at all).
//!
//! TLS 1.2 and 1.3 only, with rustls and the `ring` provider. Once the
//! handshake is done a TLS connection is framed, limited and reused exactly
//! like a TCP one (`tcp.rs`): the stream type is the only difference.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use crate::config::{Config, TrunkConfig};

/// The protocol versions ringback speaks: nothing older than TLS 1.2.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listener's certificate and key, swappable while connections run.
pub struct TlsServer {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsServer {
    /// Load `cert` and `key` (PEM); an error names the file and what is wrong.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<TlsServer> {
        let config = server_config(cert, key)?;
        Ok(TlsServer {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Re-read the files. On an error the certificate in use stays (a
    /// half-written renewal must not take TLS down) and the error is returned.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Reload on every SIGHUP (the same signal that reloads dialplans), so a
    /// renewed certificate is picked up without a restart. Connections that
    /// are open keep the certificate they were made with.
    pub fn reload_on_hangup(self: &Arc<Self>) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match me.reload() {
                    Ok(()) => tracing::info!(cert = %me.cert.display(), "TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "TLS certificate not reloaded; the previous one stays in use")
                    }
                }
            }
        });
        Ok(())
    }
}

fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("sip.tls_cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("sip.tls_cert {}: not a PEM certificate", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "sip.tls_cert {}: no CERTIFICATE block in the file",
            cert.display()
        );
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("sip.tls_key {}: no private key found", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "sip.tls_key {} does not match sip.tls_cert {}",
                key.display(),
                cert.display()
            )
        })?;
    // SIP has no ALPN token of its own; phones send none.
    config.alpn_protocols.clear();
    Ok(config)
}

/// Where an outgoing TLS connection may go and whom it must find there.
#[derive(Clone)]
pub struct TlsTarget {
    /// The name the certificate must carry, sent as SNI.
    pub name: ServerName<'static>,
    /// Roots or verifier for this peer.
    pub config: Arc<ClientConfig>,
}

/// Client-side TLS settings per destination: each TLS trunk by its address,
/// and a default (public roots, name = IP) for anyone else, such as a phone
/// whose registration connection went away.
pub struct TlsClients {
    by_addr: HashMap<SocketAddr, TlsTarget>,
    default: Arc<ClientConfig>,
}

impl TlsClients {
    /// Build from the trunks in `config`; a broken CA file is an error.
    pub fn from_config(config: &Config) -> anyhow::Result<TlsClients> {
        let default = Arc::new(client_config(None, true)?);
        let mut by_addr = HashMap::new();
        let trunks = std::iter::once(("trunk".to_string(), &config.trunk)).chain(
            config
                .trunks
                .iter()
                .map(|(n, t)| (format!("trunks.{n}"), t)),
        );
        for (key, t) in trunks {
            if !t.transport.eq_ignore_ascii_case("tls") {
                continue;
            }
            let Some(addr) = t.address else { continue };
            let target = trunk_target(t, addr).with_context(|| key.clone())?;
            by_addr.insert(addr, target);
        }
        Ok(TlsClients { by_addr, default })
    }

    /// The settings for a connection to `peer`.
    pub fn target(&self, peer: SocketAddr) -> TlsTarget {
        self.by_addr
            .get(&peer)
            .cloned()
            .unwrap_or_else(|| TlsTarget {
                name: ServerName::IpAddress(peer.ip().into()),
                config: Arc::clone(&self.default),
            })
    }
}

fn trunk_target(t: &TrunkConfig, addr: SocketAddr) -> anyhow::Result<TlsTarget> {
    let name_text = t
        .tls_server_name
        .clone()
        .or_else(|| t.domain.clone())
        .unwrap_or_else(|| addr.ip().to_string());
    let name = ServerName::try_from(name_text.clone())
        .with_context(|| format!("tls_server_name `{name_text}` is not a host name or IP"))?;
    Ok(TlsTarget {
        name,
        config: Arc::new(client_config(t.tls_ca_file.as_deref(), t.tls_verify)?),
    })
}

fn client_config(ca_file: Option<&Path>, verify: bool) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("TLS versions")?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("tls_ca_file {}", path.display()))?;
            for c in certs {
                let c =
                    c.with_context(|| format!("tls_ca_file {}: not a PEM file", path.display()))?;
                roots
                    .add(c)
                    .with_context(|| format!("tls_ca_file {}: unusable CA", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("tls_ca_file {}: no CERTIFICATE block", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `tls_verify = false`: any certificate is accepted, but the handshake's
/// signatures are still checked (the peer must hold the key it shows).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
