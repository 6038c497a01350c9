//! TLS listeners with rustls (no OpenSSL): building a server configuration from
//! Mosquitto's per-listener options, and reading the client certificate's identity.
//!
//! Owns the mapping of `certfile`, `keyfile`, `cafile`/`capath`, `crlfile`,
//! `require_certificate`, `tls_version` (a minimum) and `ciphers`/`ciphers_tls1.3` (OpenSSL
//! names, honoured where rustls has the suite, refused with a clear error otherwise) onto a
//! `rustls::ServerConfig`. Called by the `culex` binary at start and on SIGHUP (which is
//! how renewed certificates are picked up: new connections use the new configuration,
//! connected clients keep theirs). The handshake itself runs in [`super::Layers`].

use super::cipher_list;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS options of one listener, as written in `mosquitto.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `certfile`: the server's certificate chain (PEM).
    pub certfile: PathBuf,
    /// `keyfile`: its private key (PEM).
    pub keyfile: PathBuf,
    /// `cafile`: CA certificates for client certificates.
    pub cafile: Option<PathBuf>,
    /// `capath`: a directory of CA certificates (every `*.pem`/`*.crt` is loaded).
    pub capath: Option<PathBuf>,
    /// `crlfile`: certificate revocation list for client certificates.
    pub crlfile: Option<PathBuf>,
    /// `require_certificate`: clients must present a certificate the CA signed.
    pub require_certificate: bool,
    /// `tls_version`: the minimum version, `tlsv1.2` (default) or `tlsv1.3`.
    pub min_tls13: bool,
    /// `ciphers`: OpenSSL cipher names for TLS 1.2, colon separated.
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: TLS 1.3 suite names, colon separated.
    pub ciphers_tls13: Option<String>,
}

/// Builds the rustls configuration for `options`. Errors name the option and file.
pub fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&options.certfile)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("certfile {}: {e}", options.certfile.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certfile {}: no certificate found",
            options.certfile.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&options.keyfile)
        .map_err(|e| format!("keyfile {}: {e}", options.keyfile.display()))?;
    let mut crypto = provider::default_provider();
    crypto.cipher_suites = cipher_suites(options)?;
    let versions: &[&'static SupportedProtocolVersion] = if options.min_tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let crypto = Arc::new(crypto);
    let builder = ServerConfig::builder_with_provider(crypto.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_version/ciphers: {e}"))?;
    // The CA files are read (and their errors reported) either way; like Mosquitto
    // (SSL_VERIFY_NONE), a listener without `require_certificate` never asks for a client
    // certificate, so a device with an old or foreign one still connects.
    let roots = client_roots(options)?.filter(|_| options.require_certificate);
    let builder = match roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto);
            if let Some(path) = &options.crlfile {
                let crls: Vec<CertificateRevocationListDer<'static>> =
                    CertificateRevocationListDer::pem_file_iter(path)
                        .and_then(|crls| crls.collect::<Result<_, _>>())
                        .map_err(|e| format!("crlfile {}: {e}", path.display()))?;
                verifier = verifier.with_crls(crls);
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("cafile/capath: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certfile/keyfile {}: {e}", options.keyfile.display()))?;
    Ok(Arc::new(config))
}

/// The CA certificates client certificates are checked against, if any are configured.
fn client_roots(options: &TlsOptions) -> Result<Option<RootCertStore>, String> {
    let mut files: Vec<PathBuf> = options.cafile.iter().cloned().collect();
    if let Some(dir) = &options.capath {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("capath {}: {e}", dir.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| is_certificate_file(path))
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        if options.require_certificate {
            return Err("require_certificate needs cafile or capath".to_string());
        }
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    for file in files {
        let certs = CertificateDer::pem_file_iter(&file)
            .map_err(|e| format!("cafile {}: {e}", file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("cafile {}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("cafile {}: {e}", file.display()))?;
        }
    }
    Ok(Some(roots))
}

fn is_certificate_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // `openssl rehash` names (`abcd1234.0`) as well as plain PEM files.
    name.ends_with(".pem")
        || name.ends_with(".crt")
        || name
            .rsplit_once('.')
            .is_some_and(|(_, n)| n.parse::<u8>().is_ok())
}

/// The suites `ciphers` and `ciphers_tls1.3` select; all of rustls' when neither is set.
fn cipher_suites(options: &TlsOptions) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = provider::ALL_CIPHER_SUITES;
    let named = |names: Vec<&str>| -> Vec<SupportedCipherSuite> {
        names
            .into_iter()
            .filter_map(|name| {
                all.iter()
                    .find(|suite| format!("{:?}", suite.suite()) == name)
                    .copied()
            })
            .collect()
    };
    let tls12 = match &options.ciphers {
        Some(list) => named(cipher_list::tls12(list)?),
        None => all
            .iter()
            .copied()
            .filter(|s| s.tls13().is_none())
            .collect(),
    };
    let tls13 = match &options.ciphers_tls13 {
        Some(list) => named(cipher_list::tls13(list)?),
        None => all
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect(),
    };
    let mut suites = tls13;
    suites.extend(tls12);
    if suites.is_empty() {
        return Err("ciphers: no usable cipher suite".to_string());
    }
    Ok(suites)
}

/// Which part of a client certificate becomes the user name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateUsername {
    /// `use_identity_as_username`: the subject's common name.
    CommonName,
    /// `use_subject_as_username`: the whole subject, RFC 2253 order (`CN=…,O=…,C=…`).
    Subject,
}

/// The user name `which` takes from a DER client certificate.
pub fn certificate_username(der: &[u8], which: CertificateUsername) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    match which {
        CertificateUsername::CommonName => subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()
            .map(str::to_string),
        CertificateUsername::Subject => {
            let mut parts: Vec<String> = Vec::new();
            for rdn in subject.iter_rdn() {
                for attribute in rdn.iter() {
                    let key = x509_parser::objects::oid2abbrev(
                        attribute.attr_type(),
                        x509_parser::objects::oid_registry(),
                    )
                    .map(str::to_string)
                    .unwrap_or_else(|_| attribute.attr_type().to_id_string());
                    parts.push(format!("{key}={}", attribute.as_str().unwrap_or("")));
                }
            }
            parts.reverse();
            Some(parts.join(","))
        }
    }
}
