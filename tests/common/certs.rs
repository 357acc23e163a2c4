//! A lab PKI for the TLS tests: a CA and certificates it signs, made with
//! the `openssl` command line into a test's own directory (scripts/test
//! installs openssl when it is missing).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA that can sign certificates.
pub struct Ca {
    /// The CA certificate (PEM): what a peer trusts.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// A certificate and its key (PEM files).
pub struct Leaf {
    /// Certificate chain (leaf only).
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

impl Ca {
    /// A new CA named `name`, in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ]);
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1 signed by this CA.
    pub fn issue(&self, name: &str) -> Leaf {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.pem"));
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write ext");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            path(&key),
            "-out",
            path(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&self.cert),
            "-CAkey",
            path(&self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ]);
        Leaf { cert, key }
    }
}

/// A lab CA and a certificate it issued for ringback (localhost,
/// 127.0.0.1), in a directory that lives as long as the test.
pub struct Lab {
    /// Where the files are (other certificates may go here too).
    pub dir: tempfile::TempDir,
    /// The CA phones and trunks trust.
    pub ca: Ca,
    /// ringback's own certificate.
    pub ringback: Leaf,
}

impl Lab {
    /// A fresh CA and ringback certificate.
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new(dir.path(), "lab");
        let ringback = ca.issue("ringback");
        Lab { dir, ca, ringback }
    }

    /// `[sip]` lines for a TLS listener on a free port with the lab
    /// certificate.
    pub fn tls_listener(&self) -> String {
        format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.ringback.cert.display(),
            self.ringback.key.display()
        )
    }
}

/// The server's TLS address (its ready line names it).
pub fn tls_addr(srv: &super::Server) -> String {
    srv.tls
        .expect("the ready line names the TLS listener")
        .to_string()
}

/// A path as the `&str` a command line or config wants.
pub fn path_str(p: &Path) -> &str {
    path(p)
}
