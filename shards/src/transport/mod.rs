//! What sits between a socket and MQTT bytes: nothing (plain TCP), TLS, WebSocket, or
//! WebSocket inside TLS.
//!
//! Owns [`Layers`], the per-connection state of the non-plain transports, as a pure state
//! machine: bytes read from the socket go in through [`Layers::ingest`], MQTT bytes and the
//! bytes the peer must receive (handshakes, pongs, alerts) come out; MQTT bytes to send go
//! through [`Layers::wrap`]. The runtime owns the socket and calls these; plain TCP
//! connections have no `Layers` at all and keep the zero-copy path (read buffer straight
//! into the decoder, outbound buffer straight to `send`).

pub mod cipher_list;
pub mod tls;
pub mod websocket;

use bytes::{BufMut, BytesMut};
use rustls::ServerConfig;
use std::io::{Read, Write};
use std::sync::Arc;
use websocket::{WebSocket, WsError};

/// Why a transport failed; the connection is closed (after sending what `reply` holds).
#[derive(Debug)]
pub enum TransportError {
    /// Occurs when the TLS handshake or a record fails (bad certificate, wrong version,
    /// plain MQTT sent to a TLS port, ...).
    Tls(rustls::Error),
    /// Occurs when the WebSocket upgrade or a frame is invalid, or the peer closed it.
    WebSocket(WsError),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Tls(error) => write!(f, "TLS: {error}"),
            TransportError::WebSocket(error) => write!(f, "WebSocket: {error:?}"),
        }
    }
}

/// The transport state of one TLS and/or WebSocket connection.
pub struct Layers {
    tls: Option<rustls::ServerConnection>,
    ws: Option<WebSocket>,
}

impl Layers {
    /// A connection on a listener with `tls` and/or `ws` (at least one).
    pub fn new(
        tls: Option<Arc<ServerConfig>>,
        ws: Option<WebSocket>,
    ) -> Result<Layers, TransportError> {
        debug_assert!(tls.is_some() || ws.is_some(), "plain TCP needs no layers");
        let tls = match tls {
            Some(config) => {
                let mut connection =
                    rustls::ServerConnection::new(config).map_err(TransportError::Tls)?;
                // Output is bounded upstream (the connection's buffer limits), never here.
                connection.set_buffer_limit(None);
                Some(connection)
            }
            None => None,
        };
        Ok(Layers { tls, ws })
    }

    /// True once every handshake completed and MQTT bytes may flow.
    pub fn ready(&self) -> bool {
        self.tls.as_ref().is_none_or(|tls| !tls.is_handshaking())
            && self.ws.as_ref().is_none_or(WebSocket::is_open)
    }

    /// Feeds bytes read from the socket: MQTT bytes are appended to `mqtt`, bytes for the
    /// peer to `reply` (send them even when this returns an error: they carry the alert,
    /// the HTTP error or the close frame).
    pub fn ingest(
        &mut self,
        wire: &[u8],
        mqtt: &mut BytesMut,
        reply: &mut BytesMut,
    ) -> Result<(), TransportError> {
        let Some(tls) = self.tls.as_mut() else {
            let ws = self.ws.as_mut().map(|ws| ws.ingest(wire, mqtt, reply));
            return ws.unwrap_or(Ok(())).map_err(TransportError::WebSocket);
        };
        let mut input = wire;
        let mut plain = BytesMut::new();
        let mut result = Ok(());
        while !input.is_empty() && result.is_ok() {
            match tls.read_tls(&mut input) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
            if let Err(error) = tls.process_new_packets() {
                result = Err(TransportError::Tls(error));
                break;
            }
            read_plaintext(tls, &mut plain);
        }
        if let (Some(ws), false) = (self.ws.as_mut(), plain.is_empty()) {
            let mut ws_reply = BytesMut::new();
            let ws_result = ws
                .ingest(&plain, mqtt, &mut ws_reply)
                .map_err(TransportError::WebSocket);
            if !ws_reply.is_empty() {
                let _ = tls.writer().write_all(&ws_reply);
            }
            if result.is_ok() {
                result = ws_result;
            }
        } else {
            mqtt.extend_from_slice(&plain);
        }
        write_records(tls, reply);
        result
    }

    /// Wraps MQTT bytes for the socket.
    pub fn wrap(&mut self, mqtt: &[u8], wire: &mut BytesMut) {
        match (self.tls.as_mut(), self.ws.as_ref()) {
            (None, Some(ws)) => ws.wrap(mqtt, wire),
            (Some(tls), ws) => {
                let framed;
                let plain = match ws {
                    Some(ws) => {
                        let mut frames = BytesMut::with_capacity(mqtt.len() + 10);
                        ws.wrap(mqtt, &mut frames);
                        framed = frames;
                        &framed[..]
                    }
                    None => mqtt,
                };
                let _ = tls.writer().write_all(plain);
                write_records(tls, wire);
            }
            (None, None) => wire.extend_from_slice(mqtt),
        }
    }

    /// Passes bytes that are not MQTT (a plain HTTP response on a websockets listener)
    /// through TLS only, when there is TLS.
    pub fn wrap_plain(&mut self, bytes: &[u8], wire: &mut BytesMut) {
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.writer().write_all(bytes);
                write_records(tls, wire);
            }
            None => wire.extend_from_slice(bytes),
        }
    }

    /// What the peer should receive when the broker closes: a WebSocket close frame and a
    /// TLS close_notify.
    pub fn close(&mut self, wire: &mut BytesMut) {
        let mut frames = BytesMut::new();
        if let Some(ws) = self.ws.as_mut() {
            ws.close(1000, &mut frames);
        }
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.writer().write_all(&frames);
                tls.send_close_notify();
                write_records(tls, wire);
            }
            None => wire.extend_from_slice(&frames),
        }
    }

    /// The user name the client certificate gives, when one was presented and verified.
    pub fn certificate_username(&self, which: tls::CertificateUsername) -> Option<String> {
        let certificate = self.tls.as_ref()?.peer_certificates()?.first()?;
        tls::certificate_username(certificate, which)
    }
}

/// Moves decrypted bytes out of rustls.
fn read_plaintext(tls: &mut rustls::ServerConnection, plain: &mut BytesMut) {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tls.reader().read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => plain.put_slice(&chunk[..read]),
        }
    }
}

/// Moves encrypted records out of rustls.
fn write_records(tls: &mut rustls::ServerConnection, wire: &mut BytesMut) {
    let mut writer = wire.writer();
    while tls.wants_write() {
        if tls.write_tls(&mut writer).is_err() {
            return;
        }
    }
}
