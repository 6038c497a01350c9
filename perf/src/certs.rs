//! Throwaway certificates for `compare --tls`: a CA and a server certificate for
//! 127.0.0.1/localhost, made with the `openssl` command-line tool into a temporary
//! directory that `compare` removes when it ends. Never committed, never reused.
//!
//! Owns the openssl invocations and the file layout. Called by `compare` once per
//! comparison; the broker configs (`broker.rs`) point `certfile`/`keyfile` here and the
//! harness's clients trust `ca.crt`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The key type of the generated certificates (`--tls-key-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 (default: what current deployments use).
    #[default]
    Ec256,
    /// RSA 2048 (handshakes cost the server much more CPU).
    Rsa2048,
}

impl KeyType {
    /// `ec` / `ec256` / `p256`, or `rsa` / `rsa2048`.
    pub fn parse(text: &str) -> Option<KeyType> {
        match text {
            "ec" | "ec256" | "p256" => Some(KeyType::Ec256),
            "rsa" | "rsa2048" => Some(KeyType::Rsa2048),
            _ => None,
        }
    }

    /// For reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ec256 => "ECDSA P-256",
            KeyType::Rsa2048 => "RSA 2048",
        }
    }

    fn newkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Ec256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            KeyType::Rsa2048 => &["-newkey", "rsa:2048"],
        }
    }
}

/// The files of one generated set.
#[derive(Clone, Debug)]
pub struct Certs {
    /// The directory holding them (removed by [`Certs::remove`]).
    pub dir: PathBuf,
    /// CA certificate, for the clients (`--cafile`).
    pub ca: PathBuf,
    /// Server certificate (`certfile`).
    pub cert: PathBuf,
    /// Server key (`keyfile`).
    pub key: PathBuf,
}

impl Certs {
    /// Makes a CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) in `dir`.
    pub fn generate(dir: &Path, key_type: KeyType) -> Result<Certs, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let certs = Certs {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        let ca_key = dir.join("ca.key");
        let csr = dir.join("server.csr");
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| format!("cannot write {}: {e}", ext.display()))?;
        let s = |p: &Path| p.display().to_string();
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(key_type.newkey_args());
        let (ca_key_s, ca_s) = (s(&ca_key), s(&certs.ca));
        ca.extend([
            "-keyout",
            &ca_key_s,
            "-out",
            &ca_s,
            "-subj",
            "/CN=culex-perf throwaway CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca)?;
        let mut req = vec!["req", "-nodes"];
        req.extend(key_type.newkey_args());
        let (key_s, csr_s) = (s(&certs.key), s(&csr));
        req.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", "/CN=localhost"]);
        openssl(&req)?;
        let (cert_s, ext_s) = (s(&certs.cert), s(&ext));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            &ca_s,
            "-CAkey",
            &ca_key_s,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert_s,
            "-extfile",
            &ext_s,
        ])?;
        // Mosquitto may read its files after dropping root for the `mosquitto` user.
        for file in [&certs.ca, &certs.cert, &certs.key] {
            set_mode(file, 0o644)?;
        }
        Ok(certs)
    }

    /// Deletes the directory and everything in it.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run openssl (needed by --tls in compare): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{client_config, TlsOptions};

    #[test]
    fn generated_certificates_build_a_client_config() {
        let dir =
            std::env::temp_dir().join(format!("culex-perf-certs-test-{}", std::process::id()));
        let certs = match Certs::generate(&dir, KeyType::Ec256) {
            Ok(certs) => certs,
            Err(e) => panic!("{e}"),
        };
        let options = TlsOptions {
            cafile: Some(certs.ca.clone()),
            ..TlsOptions::default()
        };
        let built = client_config(&options, [127, 0, 0, 1].into());
        certs.remove();
        assert!(built.is_ok(), "{:?}", built.err());
        assert!(!dir.exists());
    }
}
