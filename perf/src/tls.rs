//! TLS for the harness's clients: the rustls client configuration built from `--tls`,
//! `--cafile`, `--cert`/`--key`, `--tls-version` and `--tls-resume`, and the per-connection
//! record layer that `client.rs` drives by hand over its own monoio socket halves.
//!
//! Owns [`TlsOptions`] (what the user asked for, pure data), [`client_config`] (built once
//! per run by the engine) and [`Session`], a `rustls::ClientConnection` shared by one
//! connection's reader and writer halves (both live on the same harness thread, so an
//! `Rc<RefCell<…>>` without locks; no borrow is ever held across an `.await`).
//!
//! Why by hand rather than through `monoio-rustls`: the harness splits every connection
//! into a reader and a writer that run in different tasks (a publisher writes while its
//! ack task reads), batches many packets into one write and decodes every packet of one
//! `recv`. Driving the `ClientConnection` directly keeps all of that: one `recv` of
//! ciphertext is decrypted in one pass into the decoder's buffer, and one flush encrypts
//! the whole batch and leaves in one `write`. Only the record layer's copies are added.
//!
//! ```text
//!   handshake(): write_tls ─► socket ─► read ─► read_tls/process_new_packets … until done
//!   Writer::flush: plaintext batch ─► writer().write_all ─► write_tls ─► one write_all
//!   Reader::fill:  one recv ─► read_tls/process_new_packets ─► plaintext into the decoder
//! ```

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};
use std::cell::RefCell;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// The TLS options of a run (`None` in the workload means plain TCP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--cafile`: CA certificates (PEM) that signed the broker's certificate.
    pub cafile: Option<PathBuf>,
    /// `--cert`: client certificate chain (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// `--key`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// `--tls-server-name`: the name checked against the broker's certificate; default:
    /// the broker's IP address (the certificates `compare` makes carry it).
    pub server_name: Option<String>,
    /// `--tls-version 1.2|1.3`: only that version; `None` lets rustls pick (1.3 first).
    pub version: Option<TlsVersion>,
    /// `--tls-resume`: keep rustls's session cache, so reconnections resume sessions
    /// (PSK) instead of making full handshakes. Off by default.
    pub resume: bool,
}

/// A TLS protocol version the harness can be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    V12,
    /// TLS 1.3 only.
    V13,
}

impl TlsVersion {
    /// `1.2`, `tlsv1.2`, `1.3`, `tlsv1.3`.
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text.trim_start_matches("tlsv") {
            "1.2" => Some(TlsVersion::V12),
            "1.3" => Some(TlsVersion::V13),
            _ => None,
        }
    }
}

/// What a run's clients use to open TLS connections: the shared configuration and the
/// server name, built once per run.
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// A new client-side session for one connection.
    pub fn session(&self) -> Result<ClientConnection, String> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| format!("cannot start a TLS session: {e}"))?;
        // The writer encrypts a whole batch at once and drains it before writing.
        conn.set_buffer_limit(None);
        Ok(conn)
    }

    /// The rustls configuration (the broker start-up probe uses it too).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name the broker's certificate is checked against.
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }
}

/// Builds the client configuration for `options` against a broker at `broker_ip`.
/// Errors name the option and the file.
pub fn client_config(options: &TlsOptions, broker_ip: IpAddr) -> Result<TlsClient, String> {
    let mut roots = RootCertStore::empty();
    let Some(cafile) = &options.cafile else {
        return Err(
            "--tls needs --cafile PATH (the CA that signed the broker's certificate)".to_string(),
        );
    };
    let certs = read_certs(cafile, "--cafile")?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "--cafile {}: no usable CA certificate",
            cafile.display()
        ));
    }
    let versions: &[&'static SupportedProtocolVersion] = match options.version {
        Some(TlsVersion::V12) => &[&rustls::version::TLS12],
        Some(TlsVersion::V13) => &[&rustls::version::TLS13],
        None => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| format!("--tls-version: {e}"))?
        .with_root_certificates(roots);
    let mut config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "--cert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("--key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--cert/--key: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".to_string()),
    };
    if !options.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let server_name = match &options.server_name {
        Some(name) => ServerName::try_from(name.clone())
            .map_err(|e| format!("--tls-server-name {name:?}: {e}"))?,
        None => ServerName::IpAddress(broker_ip.into()),
    };
    Ok(TlsClient {
        config: Arc::new(config),
        server_name,
    })
}

fn read_certs(path: &PathBuf, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{option} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{option} {}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// One connection's TLS state, shared by its reader and writer halves.
pub type Session = Rc<RefCell<ClientConnection>>;

/// Runs the TLS handshake on `stream` to the end (before the MQTT CONNECT).
pub async fn handshake(stream: &mut TcpStream, conn: &mut ClientConnection) -> Result<(), String> {
    let mut out = Vec::new();
    let mut input = Vec::with_capacity(16 * 1024);
    loop {
        if conn.wants_write() {
            out.clear();
            write_tls_all(conn, &mut out)?;
            let (result, buf) = stream.write_all(out).await;
            out = buf;
            result.map_err(|e| format!("TLS handshake write failed: {e}"))?;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        input.clear();
        let (result, buf) = stream.read(input).await;
        input = buf;
        match result {
            Ok(0) => return Err("the broker closed the connection during the TLS handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("TLS handshake read failed: {e}")),
        }
        let mut rest = &input[..];
        while !rest.is_empty() {
            conn.read_tls(&mut rest)
                .map_err(|e| format!("TLS handshake: {e}"))?;
            if let Err(error) = conn.process_new_packets() {
                // Tell the broker why (best effort), as OpenSSL clients do.
                out.clear();
                let _ = write_tls_all(conn, &mut out);
                let (_, _) = stream.write_all(out).await;
                return Err(format!("TLS handshake failed: {error}"));
            }
        }
    }
}

/// Moves every pending TLS record into `out`.
pub fn write_tls_all(conn: &mut ClientConnection, out: &mut Vec<u8>) -> Result<(), String> {
    while conn.wants_write() {
        conn.write_tls(out)
            .map_err(|e| format!("TLS write failed: {e}"))?;
    }
    Ok(())
}

/// Encrypts `plaintext` and appends the records to `out`.
pub fn seal(
    conn: &mut ClientConnection,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    conn.writer()
        .write_all(plaintext)
        .map_err(|e| format!("TLS write failed: {e}"))?;
    write_tls_all(conn, out)
}

/// Decrypts the ciphertext `input` and appends the plaintext to `plain`. Returns false
/// when the broker sent close_notify.
pub fn open(
    conn: &mut ClientConnection,
    mut input: &[u8],
    plain: &mut bytes::BytesMut,
) -> Result<bool, String> {
    while !input.is_empty() {
        conn.read_tls(&mut input)
            .map_err(|e| format!("TLS read failed: {e}"))?;
        let state = conn
            .process_new_packets()
            .map_err(|e| format!("TLS error from the broker's records: {e}"))?;
        let ready = state.plaintext_bytes_to_read();
        if ready > 0 {
            let start = plain.len();
            plain.resize(start + ready, 0);
            conn.reader()
                .read_exact(&mut plain[start..])
                .map_err(|e| format!("TLS plaintext read failed: {e}"))?;
        }
        if state.peer_has_closed() {
            return Ok(false);
        }
    }
    Ok(true)
}
