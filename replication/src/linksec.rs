//! What secures the cluster link beyond the seed's plain TCP: the shared cluster secret
//! (`cluster_secret_file`) with its challenge–response, and mutual TLS (`cluster_tls_*`).
//!
//! Built once at start-up by the binary ([`Secret::read`], [`LinkTls::load`]; their errors
//! name the file), handed to the replication core in [`LinkSecurity`], and used by
//! `handshake.rs` on every link the node opens or accepts. Pure: nothing here touches a
//! socket.
//!
//! The secret's handshake, on a link that has one (both sides must):
//!
//! ```text
//!   caller                                         callee
//!   Hello { cluster, from, nonce: Nc } ─────────►  cluster, member and secret checks
//!   check Ps  ◄───────── Challenge { nonce: Ns, proof: Ps = HMAC(k, server ‖ …) }
//!   Proof { proof: Pc = HMAC(k, client ‖ …) } ──►  check Pc
//!             ◄──────────────────────────────────  Welcome (or Refused { reason })
//! ```
//!
//! Both proofs are HMAC-SHA-256 keyed with the secret over a role label, the cluster name,
//! the caller's node id and both fresh 32-byte nonces: each side proves it knows the secret
//! without sending it, a captured proof is worthless on the next connection (the other
//! side's nonce differs), and one side's proof cannot be reflected as the other's (the
//! labels differ). The secret decides who may take part; it neither encrypts nor signs the
//! frames after the handshake (TLS does, when configured).

use ring::hmac;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// Length of each side's nonce, in bytes.
pub const NONCE_LEN: usize = 32;

/// Shortest secret accepted, in bytes (a short one could be guessed offline from a
/// captured handshake).
pub const SECRET_MIN: usize = 16;

/// How the link of this node is secured. Default: neither (the seed's plain link).
#[derive(Default)]
pub struct LinkSecurity {
    /// The shared cluster secret.
    pub secret: Option<Secret>,
    /// Mutual TLS.
    pub tls: Option<LinkTls>,
}

impl std::fmt::Debug for LinkSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSecurity")
            .field("secret", &self.secret.is_some())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The shared cluster secret. Its `Debug` shows nothing of it.
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret in `bytes`, without trailing whitespace (the newline an editor or
    /// `echo` leaves); at least [`SECRET_MIN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Secret, String> {
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        let secret = &bytes[..end];
        if secret.len() < SECRET_MIN {
            return Err(format!(
                "the secret must be at least {SECRET_MIN} bytes long (it has {})",
                secret.len()
            ));
        }
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The secret in the file at `path`.
    pub fn read(path: &Path) -> Result<Secret, String> {
        let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
        Secret::new(&bytes)
    }

    /// The callee's proof (sent in the Challenge).
    pub fn server_proof(&self, transcript: &Transcript<'_>) -> Vec<u8> {
        self.sign(b"server", transcript)
    }

    /// The caller's proof (sent in Proof).
    pub fn client_proof(&self, transcript: &Transcript<'_>) -> Vec<u8> {
        self.sign(b"client", transcript)
    }

    /// True when `proof` is the callee's proof over `transcript` (constant time).
    pub fn check_server_proof(&self, transcript: &Transcript<'_>, proof: &[u8]) -> bool {
        self.check(b"server", transcript, proof)
    }

    /// True when `proof` is the caller's proof over `transcript` (constant time).
    pub fn check_client_proof(&self, transcript: &Transcript<'_>, proof: &[u8]) -> bool {
        self.check(b"client", transcript, proof)
    }

    fn sign(&self, role: &[u8], transcript: &Transcript<'_>) -> Vec<u8> {
        hmac::sign(&self.0, &transcript.message(role))
            .as_ref()
            .to_vec()
    }

    fn check(&self, role: &[u8], transcript: &Transcript<'_>, proof: &[u8]) -> bool {
        hmac::verify(&self.0, &transcript.message(role), proof).is_ok()
    }
}

/// What both proofs of one handshake cover.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The caller's node id.
    pub caller: u64,
    /// The caller's nonce (in its Hello).
    pub caller_nonce: &'a [u8],
    /// The callee's nonce (in its Challenge).
    pub callee_nonce: &'a [u8],
}

impl Transcript<'_> {
    /// The signed bytes: every field length-prefixed, so no two transcripts share them.
    fn message(&self, role: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(96 + self.cluster.len());
        for part in [
            b"culex cluster link 2".as_slice(),
            role,
            self.cluster.as_bytes(),
            &self.caller.to_be_bytes(),
            self.caller_nonce,
            self.callee_nonce,
        ] {
            message.extend_from_slice(&(part.len() as u32).to_be_bytes());
            message.extend_from_slice(part);
        }
        message
    }
}

/// A fresh random nonce (the system's generator).
pub fn nonce() -> Result<Vec<u8>, String> {
    let mut nonce = vec![0u8; NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| "the system's random generator failed".to_string())?;
    Ok(nonce)
}

/// Why callee `me` refuses a Hello carrying `nonce` from node `from`, given its own
/// `secret`, before any proof is exchanged: a side with a secret and a side without one
/// never talk. The reason is logged on both sides, so it names both nodes.
pub fn hello_refusal(secret: Option<&Secret>, nonce: &[u8], from: u64, me: u64) -> Option<String> {
    match (secret, nonce.len()) {
        (None, 0) | (Some(_), NONCE_LEN) => None,
        (Some(_), 0) => Some(format!(
            "node {from} sent no proof of the cluster secret, which node {me} requires (is \
             cluster_secret_file set on node {from}?)"
        )),
        (None, _) => Some(format!(
            "node {from} uses a cluster secret and node {me} has none (cluster_secret_file \
             is not set on node {me})"
        )),
        (Some(_), len) => Some(format!("node {from} sent a nonce of {len} bytes")),
    }
}

/// The mutual-TLS configurations of the link: this node's certificate and key, and the CA
/// that signs every node's certificate. TLS 1.3 only.
pub struct LinkTls {
    /// For links this node accepts (a client certificate the CA signed is required).
    pub server: Arc<ServerConfig>,
    /// For links this node opens (the callee's certificate must be the CA's and name the
    /// address the link goes to).
    pub client: Arc<ClientConfig>,
}

/// Which of the three TLS files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `cluster_tls_certfile`.
    Cert,
    /// `cluster_tls_keyfile`.
    Key,
    /// `cluster_tls_cafile`.
    Ca,
}

impl LinkTls {
    /// Reads the files and builds both configurations; checks that the key belongs to the
    /// certificate and that the CA signed it. An error says which file and why.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<LinkTls, (TlsFile, String)> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| (TlsFile::Cert, e.to_string()))?;
        if chain.is_empty() {
            return Err((TlsFile::Cert, "no certificate found".to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| (TlsFile::Key, e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(ca).map_err(|e| (TlsFile::Ca, e.to_string()))?;
        for ca in cas {
            let ca = ca.map_err(|e| (TlsFile::Ca, e.to_string()))?;
            roots.add(ca).map_err(|e| (TlsFile::Ca, e.to_string()))?;
        }
        if roots.is_empty() {
            return Err((TlsFile::Ca, "no certificate found".to_string()));
        }
        let roots = Arc::new(roots);
        let crypto = Arc::new(provider::default_provider());
        let versions = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), crypto.clone())
            .build()
            .map_err(|e| (TlsFile::Ca, e.to_string()))?;
        // This node's certificate must pass the check the other nodes make of it.
        let (leaf, intermediates) = chain.split_first().ok_or((TlsFile::Cert, String::new()))?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| (TlsFile::Cert, format!("not accepted by the CA: {e}")))?;
        let server = ServerConfig::builder_with_provider(crypto.clone())
            .with_protocol_versions(versions)
            .map_err(|e| (TlsFile::Cert, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| (TlsFile::Key, e.to_string()))?;
        let client = ClientConfig::builder_with_provider(crypto)
            .with_protocol_versions(versions)
            .map_err(|e| (TlsFile::Cert, e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| (TlsFile::Key, e.to_string()))?;
        Ok(LinkTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The name the callee's certificate must carry: the host of its cluster address
/// (`address:port`, an IP address or a DNS name).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("{addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text.as_bytes()).expect("secret")
    }

    fn transcript<'a>(nc: &'a [u8], ns: &'a [u8]) -> Transcript<'a> {
        Transcript {
            cluster: "plant",
            caller: 2,
            caller_nonce: nc,
            callee_nonce: ns,
        }
    }

    #[test]
    fn a_proof_is_hmac_sha256_over_the_length_prefixed_transcript() {
        let k = secret("0123456789abcdef");
        let (nc, ns) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let mut message = Vec::new();
        for part in [
            b"culex cluster link 2".as_slice(),
            b"client",
            b"plant",
            &2u64.to_be_bytes(),
            &nc,
            &ns,
        ] {
            message.extend_from_slice(&(part.len() as u32).to_be_bytes());
            message.extend_from_slice(part);
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let expected = hmac::sign(&key, &message);
        assert_eq!(k.client_proof(&transcript(&nc, &ns)), expected.as_ref());
        assert_eq!(expected.as_ref().len(), 32);
    }

    #[test]
    fn each_side_checks_the_others_proof() {
        let k = secret("a shared cluster secret");
        let (nc, ns) = (nonce().expect("nonce"), nonce().expect("nonce"));
        let t = transcript(&nc, &ns);
        assert!(k.check_server_proof(&t, &k.server_proof(&t)));
        assert!(k.check_client_proof(&t, &k.client_proof(&t)));
        // One side's proof is not the other's (no reflection).
        assert!(!k.check_client_proof(&t, &k.server_proof(&t)));
        assert!(!k.check_server_proof(&t, &k.client_proof(&t)));
    }

    #[test]
    fn a_replayed_proof_is_refused() {
        let k = secret("a shared cluster secret");
        let nc = nonce().expect("nonce");
        let (first, second) = (nonce().expect("nonce"), nonce().expect("nonce"));
        assert_ne!(first, second, "each connection has a fresh nonce");
        let captured = k.client_proof(&transcript(&nc, &first));
        // The same Hello and Proof sent again meet the callee's new nonce.
        assert!(!k.check_client_proof(&transcript(&nc, &second), &captured));
        // A captured Challenge does not pass for a caller with a new nonce either.
        let challenge = k.server_proof(&transcript(&nc, &first));
        let fresh = nonce().expect("nonce");
        assert!(!k.check_server_proof(&transcript(&fresh, &first), &challenge));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let (right, wrong) = (
            secret("a shared cluster secret"),
            secret("another secret!!"),
        );
        let (nc, ns) = ([7u8; NONCE_LEN], [9u8; NONCE_LEN]);
        let t = transcript(&nc, &ns);
        assert!(!right.check_client_proof(&t, &wrong.client_proof(&t)));
        assert!(!right.check_server_proof(&t, &wrong.server_proof(&t)));
        assert!(!right.check_client_proof(&t, &[]));
    }

    #[test]
    fn the_proof_covers_the_cluster_and_the_callers_id() {
        let k = secret("a shared cluster secret");
        let (nc, ns) = ([7u8; NONCE_LEN], [9u8; NONCE_LEN]);
        let t = transcript(&nc, &ns);
        let proof = k.client_proof(&t);
        let other_cluster = Transcript {
            cluster: "plant2",
            ..t
        };
        let other_caller = Transcript { caller: 3, ..t };
        assert!(!k.check_client_proof(&other_cluster, &proof));
        assert!(!k.check_client_proof(&other_caller, &proof));
    }

    #[test]
    fn a_secret_is_the_file_without_trailing_whitespace_and_long_enough() {
        let a = secret("0123456789abcdef\n");
        let b = secret("0123456789abcdef");
        let (nc, ns) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let t = transcript(&nc, &ns);
        assert!(b.check_client_proof(&t, &a.client_proof(&t)));
        let short = Secret::new(b"hunter2\n").expect_err("short");
        assert!(
            short.contains("at least 16 bytes") && short.contains("has 7"),
            "{short}"
        );
        assert!(Secret::new(b"\n\n").is_err());
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }

    #[test]
    fn a_side_with_a_secret_and_one_without_never_talk() {
        let k = secret("a shared cluster secret");
        let nc = [1u8; NONCE_LEN];
        assert_eq!(hello_refusal(None, &[], 3, 1), None);
        assert_eq!(hello_refusal(Some(&k), &nc, 3, 1), None);
        let without = hello_refusal(Some(&k), &[], 3, 1).expect("refused");
        assert!(without.starts_with("node 3 sent no proof of the cluster secret, which node 1"));
        let with = hello_refusal(None, &nc, 3, 1).expect("refused");
        assert!(with.starts_with("node 3 uses a cluster secret and node 1 has none"));
        assert!(hello_refusal(Some(&k), &nc[..5], 3, 1).is_some());
    }

    #[test]
    fn the_server_name_is_the_host_of_the_cluster_address() {
        let ip = |s: &str| ServerName::try_from(s.to_string()).expect("name");
        assert_eq!(server_name("127.0.0.2:7000"), Ok(ip("127.0.0.2")));
        assert_eq!(server_name("[::1]:7000"), Ok(ip("::1")));
        assert_eq!(server_name("node-a.plant:7000"), Ok(ip("node-a.plant")));
        assert!(server_name("bad name:7000").is_err());
    }
}
