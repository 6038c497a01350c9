//! MQTT over WebSocket (RFC 6455, MQTT 5.0 §6): the HTTP upgrade and the frame codec.
//!
//! Owns the server side of one WebSocket: it parses the client's upgrade request, answers
//! it (choosing the `mqtt` or `mqttv3.1` subprotocol), then turns incoming frames into the
//! MQTT byte stream and MQTT bytes into binary frames. Pure: bytes in, bytes out; the
//! runtime moves them. Called by [`super::Layers`].

use crate::static_files::{self, FileRequest};
use base64::Engine as _;
use bytes::{Buf, BufMut, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest upgrade request accepted (headers included).
const REQUEST_MAX: usize = 16 * 1024;

/// Why a WebSocket failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// Occurs when the upgrade request is not a valid WebSocket handshake (the text says
    /// what is wrong; a `400 Bad Request` was queued for the client).
    BadRequest(&'static str),
    /// Occurs when the `Origin` header is not in `websockets_origin`.
    ForbiddenOrigin,
    /// Occurs when a frame breaks RFC 6455 (unmasked client frame, reserved bits, a control
    /// frame longer than 125 bytes, a text frame for MQTT's binary stream).
    Protocol(&'static str),
    /// Occurs when a frame announces more bytes than the connection may send in one packet.
    TooLarge,
    /// Occurs when the client closed the WebSocket (a close frame was queued in answer).
    Closed,
    /// Occurs when the listener serves files (`http_dir`) and the request is a plain HTTP
    /// GET or HEAD rather than an upgrade: the runtime answers it from the directory.
    PlainHttp(FileRequest),
}

enum State {
    /// Reading the HTTP upgrade request.
    Handshake(BytesMut),
    /// Frames flow.
    Open(BytesMut),
    /// A close frame was exchanged.
    Closed,
}

/// One server-side WebSocket.
pub struct WebSocket {
    state: State,
    origins: Vec<String>,
    frame_max: usize,
    /// A data frame without FIN started a message whose continuations are due.
    fragmented: bool,
    /// Plain HTTP requests are for the listener's `http_dir` (see [`WsError::PlainHttp`]).
    serves_files: bool,
}

/// Why an upgrade with another `Sec-WebSocket-Version` is refused.
const UNSUPPORTED_VERSION: &str = "unsupported WebSocket version";

impl WebSocket {
    /// A WebSocket waiting for its upgrade request. `origins` restricts the `Origin` header
    /// (`websockets_origin`; empty allows any); `frame_max` bounds one frame's payload.
    pub fn new(origins: Vec<String>, frame_max: usize) -> WebSocket {
        WebSocket {
            state: State::Handshake(BytesMut::new()),
            origins,
            frame_max,
            fragmented: false,
            serves_files: false,
        }
    }

    /// The same WebSocket on a listener with `http_dir`: a request that is not an upgrade
    /// is handed to the runtime as [`WsError::PlainHttp`] (GET, HEAD) or answered 405.
    pub fn serving_files(mut self) -> WebSocket {
        self.serves_files = true;
        self
    }

    /// True once the upgrade completed.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Feeds bytes from the peer. MQTT bytes are appended to `mqtt`; bytes the peer must
    /// receive (the upgrade answer, pongs, a close frame) to `reply`.
    pub fn ingest(
        &mut self,
        input: &[u8],
        mqtt: &mut BytesMut,
        reply: &mut BytesMut,
    ) -> Result<(), WsError> {
        match &mut self.state {
            State::Handshake(request) => {
                request.extend_from_slice(input);
                let Some(rest) = self.handshake(reply)? else {
                    return Ok(());
                };
                self.state = State::Open(BytesMut::new());
                self.frames(&rest, mqtt, reply)
            }
            State::Open(_) => self.frames(input, mqtt, reply),
            State::Closed => Err(WsError::Closed),
        }
    }

    /// Wraps MQTT bytes in one binary frame (server frames are not masked).
    pub fn wrap(&self, mqtt: &[u8], out: &mut BytesMut) {
        write_frame(out, 0x2, mqtt);
    }

    /// A close frame with `code`, for a server-initiated close.
    pub fn close(&mut self, code: u16, out: &mut BytesMut) {
        if matches!(self.state, State::Open(_)) {
            write_frame(out, 0x8, &code.to_be_bytes());
        }
        self.state = State::Closed;
    }

    /// Parses the upgrade request once complete; returns the bytes after it.
    fn handshake(&mut self, reply: &mut BytesMut) -> Result<Option<BytesMut>, WsError> {
        let State::Handshake(request) = &mut self.state else {
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        let length = match parsed.parse(request) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if request.len() < REQUEST_MAX => return Ok(None),
            _ => return Err(bad_request(reply, "malformed or oversized upgrade request")),
        };
        if self.serves_files && !has_token(&parsed, "upgrade", "websocket") {
            let outcome = match parsed.method {
                Some(method @ ("GET" | "HEAD")) => WsError::PlainHttp(FileRequest {
                    head_only: method == "HEAD",
                    target: parsed.path.unwrap_or("/").to_string(),
                }),
                _ => {
                    let answer = static_files::Answer::Status(405);
                    reply.put_slice(&static_files::other_response(&answer, false));
                    WsError::BadRequest("method not allowed")
                }
            };
            self.state = State::Closed;
            return Err(outcome);
        }
        let answer = upgrade_answer(&parsed, &self.origins);
        let answer = match answer {
            Ok(answer) => answer,
            Err(WsError::ForbiddenOrigin) => {
                reply.put_slice(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Err(WsError::ForbiddenOrigin);
            }
            Err(WsError::BadRequest(why)) if why == UNSUPPORTED_VERSION => {
                // RFC 6455 §4.4: tell the client which version the server speaks.
                reply.put_slice(
                    b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Err(WsError::BadRequest(why));
            }
            Err(WsError::BadRequest(why)) => return Err(bad_request(reply, why)),
            Err(other) => return Err(other),
        };
        reply.put_slice(answer.as_bytes());
        let rest = request.split_off(length);
        Ok(Some(rest))
    }

    /// Decodes every complete frame of `input` (after what was buffered).
    fn frames(
        &mut self,
        input: &[u8],
        mqtt: &mut BytesMut,
        reply: &mut BytesMut,
    ) -> Result<(), WsError> {
        let frame_max = self.frame_max;
        let State::Open(pending) = &mut self.state else {
            return Err(WsError::Closed);
        };
        pending.extend_from_slice(input);
        loop {
            match next_frame(pending, frame_max)? {
                None => return Ok(()),
                // RFC 6455 §5.4: a continuation belongs to a fragmented message in
                // progress, and a new data frame may not interrupt one.
                Some(Frame { opcode: 0x0, .. }) if !self.fragmented => {
                    return Err(self.fail(reply, 1002, "continuation without a message"))
                }
                Some(Frame { opcode: 0x2, .. }) if self.fragmented => {
                    return Err(self.fail(reply, 1002, "data frame inside a fragmented message"))
                }
                Some(Frame {
                    opcode: 0x0 | 0x2,
                    fin,
                    payload,
                }) => {
                    self.fragmented = !fin;
                    mqtt.extend_from_slice(&payload);
                }
                Some(Frame { opcode: 0x1, .. }) => {
                    return Err(self.fail(reply, 1003, "text frame"))
                }
                Some(Frame {
                    opcode: 0x9,
                    payload,
                    ..
                }) => write_frame(reply, 0xA, &payload),
                Some(Frame { opcode: 0xA, .. }) => {}
                Some(Frame {
                    opcode: 0x8,
                    payload,
                    ..
                }) => {
                    write_frame(reply, 0x8, &close_answer(&payload));
                    self.state = State::Closed;
                    return Err(WsError::Closed);
                }
                Some(_) => return Err(self.fail(reply, 1002, "unknown opcode")),
            }
        }
    }

    fn fail(&mut self, reply: &mut BytesMut, code: u16, why: &'static str) -> WsError {
        self.close(code, reply);
        WsError::Protocol(why)
    }
}

/// The payload of the close frame that answers a peer's close frame `payload`: the same
/// status code and reason (RFC 6455 §5.5.1 "typically echos the status code"; Mosquitto's
/// libwebsockets echoes both, and an empty close, "no status", with an empty one), or 1002
/// for a payload that is not a status code a peer may send and 1007 for a reason that is not
/// UTF-8 (§7.4, §8.1).
fn close_answer(payload: &[u8]) -> Vec<u8> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Vec::new()
        } else {
            1002u16.to_be_bytes().to_vec()
        };
    };
    let code = u16::from_be_bytes(*code);
    let sendable = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
    if !sendable {
        1002u16.to_be_bytes().to_vec()
    } else if std::str::from_utf8(reason).is_err() {
        1007u16.to_be_bytes().to_vec()
    } else {
        payload.to_vec()
    }
}

fn bad_request(reply: &mut BytesMut, why: &'static str) -> WsError {
    reply.put_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    WsError::BadRequest(why)
}

/// Checks the upgrade request and builds the `101 Switching Protocols` answer.
fn upgrade_answer(
    request: &httparse::Request<'_, '_>,
    origins: &[String],
) -> Result<String, WsError> {
    if request.method != Some("GET") {
        return Err(WsError::BadRequest("upgrade request must be GET"));
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    if !has_token(request, "upgrade", "websocket") || !has_token(request, "connection", "upgrade") {
        return Err(WsError::BadRequest("not a WebSocket upgrade"));
    }
    if header("sec-websocket-version").as_deref().map(str::trim) != Some("13") {
        return Err(WsError::BadRequest(UNSUPPORTED_VERSION));
    }
    let Some(key) = header("sec-websocket-key") else {
        return Err(WsError::BadRequest("missing Sec-WebSocket-Key"));
    };
    if !origins.is_empty() {
        let origin = header("origin");
        if !origin.is_some_and(|o| origins.iter().any(|allowed| allowed == o.trim())) {
            return Err(WsError::ForbiddenOrigin);
        }
    }
    let mut hasher = Sha1::new();
    hasher.update(key.trim().as_bytes());
    hasher.update(ACCEPT_GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
    let offered: Vec<String> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    // MQTT 5.0 §6.0: "mqtt"; MQTT 3.1 clients offer "mqttv3.1".
    let protocol = ["mqtt", "mqttv3.1"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)));
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(protocol) = protocol {
        answer.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    answer.push_str("\r\n");
    Ok(answer)
}

/// True when header `name` lists `token` (case-insensitive, comma-separated).
fn has_token(request: &httparse::Request<'_, '_>, name: &str, token: &str) -> bool {
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .any(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
}

/// One decoded frame.
struct Frame {
    opcode: u8,
    /// The final frame of its message.
    fin: bool,
    payload: BytesMut,
}

/// Splits one complete frame off the front of `buf`, unmasking it.
fn next_frame(buf: &mut BytesMut, frame_max: usize) -> Result<Option<Frame>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (first, second) = (buf[0], buf[1]);
    if first & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set"));
    }
    if second & 0x80 == 0 {
        return Err(WsError::Protocol("client frames must be masked"));
    }
    let opcode = first & 0x0F;
    let (length, header) = match second & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(bytes), 10)
        }
        126 | 127 => return Ok(None),
        short => (u64::from(short), 2),
    };
    if opcode >= 0x8 && (length > 125 || first & 0x80 == 0) {
        return Err(WsError::Protocol(
            "control frames are short and unfragmented",
        ));
    }
    let length = usize::try_from(length).map_err(|_| WsError::TooLarge)?;
    if length > frame_max {
        return Err(WsError::TooLarge);
    }
    let total = header + 4 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let mask = [
        buf[header],
        buf[header + 1],
        buf[header + 2],
        buf[header + 3],
    ];
    buf.advance(header + 4);
    let mut payload = buf.split_to(length);
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
    Ok(Some(Frame {
        opcode,
        fin: first & 0x80 != 0,
        payload,
    }))
}

/// Appends one unmasked, final frame.
fn write_frame(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.put_u8(0x80 | opcode);
    match payload.len() {
        len if len < 126 => out.put_u8(len as u8),
        len if len <= usize::from(u16::MAX) => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        len => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![0x80 | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key_and_the_mqtt_subprotocol() {
        let mut ws = WebSocket::new(Vec::new(), 1 << 20);
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        ws.ingest(&UPGRADE[..20], &mut mqtt, &mut reply)
            .expect("partial request");
        assert!(reply.is_empty() && !ws.is_open());
        ws.ingest(&UPGRADE[20..], &mut mqtt, &mut reply)
            .expect("upgrade");
        let text = String::from_utf8(reply.to_vec()).expect("ascii");
        // RFC 6455 §1.3's worked example.
        assert!(
            text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{text}"
        );
        assert!(text.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
        assert!(ws.is_open());
    }

    #[test]
    fn frames_become_the_mqtt_stream_across_splits_and_fragments() {
        let mut ws = WebSocket::new(Vec::new(), 1 << 20);
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        let mut input = UPGRADE.to_vec();
        let mut first = masked(0x2, b"\x10\x0c");
        first[0] &= 0x7F; // not final: a fragment
        input.extend(first);
        input.extend(masked(0x0, b"\x00\x04MQTT"));
        input.extend(masked(0x9, b"hi"));
        let big = vec![7u8; 300];
        input.extend(masked(0x2, &big));
        for chunk in input.chunks(7) {
            ws.ingest(chunk, &mut mqtt, &mut reply).expect("frames");
        }
        let mut expected = b"\x10\x0c\x00\x04MQTT".to_vec();
        expected.extend(&big);
        assert_eq!(&mqtt[..], &expected[..]);
        assert!(
            reply.ends_with(&[0x8A, 2, b'h', b'i']),
            "ping answered with pong"
        );
    }

    #[test]
    fn protocol_violations_are_refused() {
        let mut ws = WebSocket::new(Vec::new(), 16);
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
        assert_eq!(
            ws.ingest(&[0x82, 0x01, 0x00], &mut mqtt, &mut reply),
            Err(WsError::Protocol("client frames must be masked"))
        );
        let mut ws = WebSocket::new(Vec::new(), 16);
        ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
        assert_eq!(
            ws.ingest(&masked(0x2, &[0; 40]), &mut mqtt, &mut reply),
            Err(WsError::TooLarge)
        );
        let mut ws = WebSocket::new(Vec::new(), 16);
        let mut bad = BytesMut::new();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            ws.ingest(request, &mut mqtt, &mut bad),
            Err(WsError::BadRequest(_))
        ));
        assert!(bad.starts_with(b"HTTP/1.1 400"));
        let mut ws = WebSocket::new(Vec::new(), 16);
        let mut bad = BytesMut::new();
        let version_99 = String::from_utf8_lossy(UPGRADE).replace("Version: 13", "Version: 99");
        assert!(ws
            .ingest(version_99.as_bytes(), &mut mqtt, &mut bad)
            .is_err());
        let answer = String::from_utf8_lossy(&bad);
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("Sec-WebSocket-Version: 13\r\n"),
            "{answer}"
        );
    }

    #[test]
    fn continuations_only_continue_a_fragmented_message() {
        let mut ws = WebSocket::new(Vec::new(), 1024);
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
        assert_eq!(
            ws.ingest(&masked(0x0, b"\x10\x00"), &mut mqtt, &mut reply),
            Err(WsError::Protocol("continuation without a message"))
        );
        assert!(mqtt.is_empty());
        let mut ws = WebSocket::new(Vec::new(), 1024);
        ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
        let mut start = masked(0x2, b"\x10");
        start[0] &= 0x7F;
        ws.ingest(&start, &mut mqtt, &mut reply)
            .expect("a first fragment");
        assert_eq!(
            ws.ingest(&masked(0x2, b"\x00"), &mut mqtt, &mut reply),
            Err(WsError::Protocol("data frame inside a fragmented message"))
        );
    }

    #[test]
    fn a_close_frame_is_answered_with_its_own_status_and_reason() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"", b""),
            (b"\x03\xe8", b"\x03\xe8"),
            (b"\x0f\xa0bye", b"\x0f\xa0bye"),
            (b"\x03\xed", b"\x03\xea"),     // 1005 may not be sent: 1002
            (b"\x03\xe8\xff", b"\x03\xef"), // reason not UTF-8: 1007
        ];
        for (sent, answered) in cases {
            let mut ws = WebSocket::new(Vec::new(), 1024);
            let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
            ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
            reply.clear();
            assert_eq!(
                ws.ingest(&masked(0x8, sent), &mut mqtt, &mut reply),
                Err(WsError::Closed)
            );
            let mut expected = vec![0x88, answered.len() as u8];
            expected.extend_from_slice(answered);
            assert_eq!(&reply[..], &expected[..], "close {sent:?}");
            let mut after = BytesMut::new();
            ws.close(1000, &mut after);
            assert!(after.is_empty(), "one close frame only");
        }
    }

    #[test]
    fn with_http_dir_plain_requests_go_to_the_files_and_upgrades_still_open() {
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        let mut ws = WebSocket::new(Vec::new(), 1024).serving_files();
        let get = b"GET /index.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            ws.ingest(get, &mut mqtt, &mut reply),
            Err(WsError::PlainHttp(FileRequest {
                head_only: false,
                target: "/index.html?x=1".to_string()
            }))
        );
        assert!(reply.is_empty());
        let mut ws = WebSocket::new(Vec::new(), 1024).serving_files();
        let post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        assert!(ws.ingest(post, &mut mqtt, &mut reply).is_err());
        assert!(reply.starts_with(b"HTTP/1.1 405 "));
        let mut ws = WebSocket::new(Vec::new(), 1024).serving_files();
        reply.clear();
        ws.ingest(UPGRADE, &mut mqtt, &mut reply).expect("upgrade");
        assert!(ws.is_open() && reply.starts_with(b"HTTP/1.1 101 "));
        let mut plain = WebSocket::new(Vec::new(), 1024);
        reply.clear();
        assert!(matches!(
            plain.ingest(get, &mut mqtt, &mut reply),
            Err(WsError::BadRequest(_))
        ));
    }

    #[test]
    fn origin_is_checked_when_configured() {
        let mut ws = WebSocket::new(vec!["https://ok.example".to_string()], 1024);
        let (mut mqtt, mut reply) = (BytesMut::new(), BytesMut::new());
        assert_eq!(
            ws.ingest(UPGRADE, &mut mqtt, &mut reply),
            Err(WsError::ForbiddenOrigin)
        );
        assert!(reply.starts_with(b"HTTP/1.1 403"));
    }

    #[test]
    fn server_frames_are_unmasked_binary_with_the_right_length_form() {
        let ws = WebSocket::new(Vec::new(), 1024);
        let mut out = BytesMut::new();
        ws.wrap(&[1, 2, 3], &mut out);
        assert_eq!(&out[..], &[0x82, 3, 1, 2, 3]);
        let mut out = BytesMut::new();
        ws.wrap(&[0; 200], &mut out);
        assert_eq!(&out[..4], &[0x82, 126, 0, 200]);
    }
}
