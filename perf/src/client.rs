//! One MQTT client connection of the harness, on monoio: connect (optionally from a chosen
//! source address), CONNECT/CONNACK, SUBSCRIBE/SUBACK, and the buffered reader and writer
//! halves the roles (`roles.rs`) drive.
//!
//! Owns the socket and its two buffers. The codec is the broker's own (`shards::mqtt`):
//! [`Reader`] decodes every complete packet already read before reading again, and
//! [`Writer`] encodes many packets into one buffer that goes out in one write, so the
//! harness makes one syscall per batch, not per message.
//!
//! With TLS (`tls.rs`) the handshake runs first on the whole stream; then both halves
//! share the connection's rustls session: `fill` decrypts what one `recv` brought, and
//! `flush` encrypts the whole batch before its one write.
//!
//! ```text
//!   connect() ─► handshake() [TLS handshake, then CONNECT/CONNACK] ─► (Reader, Writer)
//!   Reader: fill() one recv ─► try_next() decode … until None ─► fill() …
//!   Writer: push()/push_publish() … ─► flush() one write_all
//! ```

use crate::tls::{self, Session, TlsClient};
use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{
    CancelHandle, CancelableAsyncReadRent, CancelableAsyncWriteRentExt, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use shards::mqtt::{
    self, ConnAck, Connect, ConnectProperties, Packet, Protocol, PublishEncode, QoS, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};
use socket2::{Domain, SockRef, Socket, Type};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// Largest packet the harness accepts from a broker (256 KiB payloads plus headers).
pub const MAX_PACKET_SIZE: usize = 1 << 20;

/// Bytes asked of one `recv`.
const READ_CHUNK: usize = 64 * 1024;

/// Keep alive the harness announces; longer than any bounded run's idle time.
const KEEP_ALIVE_S: u16 = 300;

/// Opens a TCP connection to `broker`, bound to `source` when given (loopback runs with
/// many connections spread over 127.0.0.x to get more ephemeral ports).
pub async fn connect(broker: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        let stream = TcpStream::connect_addr(broker).await?;
        stream.set_nodelay(true)?;
        return Ok(stream);
    };
    let socket = Socket::new(Domain::for_address(broker), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    set_bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&broker.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    stream.writable(false).await?;
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    if let Some(error) = SockRef::from(&fd).take_error()? {
        return Err(error);
    }
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Lets the kernel pick the source port at connect time, per destination, instead of at
/// bind time (IP_BIND_ADDRESS_NO_PORT); best effort.
fn set_bind_address_no_port(socket: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, an int option of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Who a client says it is in its CONNECT.
#[derive(Clone, Debug)]
pub struct Login<'a> {
    /// MQTT version.
    pub protocol: Protocol,
    /// Client identifier.
    pub client_id: &'a str,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Keep a session (clean session false; 5.0: session expiry one hour).
    pub persistent: bool,
    /// Topic Alias Maximum to announce (5.0; 0 = none).
    pub topic_alias_max: u16,
}

/// Runs the TLS handshake when `tls` is given, then sends CONNECT (a clean session, or a
/// kept one when `login.persistent`) and waits for a successful CONNACK.
pub async fn handshake(
    mut stream: TcpStream,
    login: &Login<'_>,
    tls: Option<&TlsClient>,
    cancel: CancelHandle,
) -> Result<(Reader, Writer, ConnAck), String> {
    let protocol = login.protocol;
    let session = match tls {
        Some(tls) => {
            let mut conn = tls.session()?;
            tls::handshake(&mut stream, &mut conn).await?;
            Some(Rc::new(RefCell::new(conn)))
        }
        None => None,
    };
    let (read_half, write_half) = stream.into_split();
    let mut reader = Reader {
        half: read_half,
        buf: BytesMut::with_capacity(READ_CHUNK),
        protocol,
        cancel: cancel.clone(),
        bytes_read: 0,
        tls: session.clone().map(|session| ReadTls {
            session,
            raw: Vec::with_capacity(READ_CHUNK),
        }),
    };
    let mut writer = Writer {
        half: write_half,
        buf: BytesMut::with_capacity(READ_CHUNK),
        protocol,
        cancel,
        tls: session,
        cipher: Vec::new(),
    };
    let connect = Connect {
        protocol,
        clean_start: !login.persistent,
        keep_alive: KEEP_ALIVE_S,
        properties: ConnectProperties {
            session_expiry_interval: (login.persistent && protocol.is_v5()).then_some(3600),
            topic_alias_maximum: Some(login.topic_alias_max).filter(|max| *max > 0),
            ..ConnectProperties::default()
        },
        client_id: mqtt::ByteStr::copy_from_str(login.client_id),
        will: None,
        username: login
            .credentials
            .map(|(user, _)| mqtt::ByteStr::copy_from_str(user)),
        password: login
            .credentials
            .map(|(_, pass)| bytes::Bytes::copy_from_slice(pass.as_bytes())),
    };
    writer.push(&Packet::Connect(Box::new(connect)))?;
    writer.flush().await?;
    match reader.next().await? {
        Some(Packet::ConnAck(connack)) if connack.reason_code == 0 => {
            Ok((reader, writer, *connack))
        }
        Some(Packet::ConnAck(connack)) => Err(format!(
            "CONNACK refused the connection, code {:#04x}",
            connack.reason_code
        )),
        Some(other) => Err(format!("expected CONNACK, got {:?}", other.packet_type())),
        None => Err("connection closed before CONNACK".to_string()),
    }
}

/// Subscribes to `filter` at `qos` and waits for its SUBACK (packets arriving before it,
/// such as retained messages, are left in the reader's buffer for the caller).
pub async fn subscribe(
    reader: &mut Reader,
    writer: &mut Writer,
    filter: &str,
    qos: QoS,
) -> Result<(), String> {
    let packet_id = mqtt::PacketId::MIN;
    let subscribe = Subscribe {
        packet_id,
        properties: SubscribeProperties::default(),
        filters: vec![(
            mqtt::ByteStr::copy_from_str(filter),
            SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        )],
    };
    writer.push(&Packet::Subscribe(subscribe))?;
    writer.flush().await?;
    let mut early = Vec::new();
    loop {
        match reader.next().await? {
            Some(Packet::SubAck(suback)) if suback.packet_id == packet_id => {
                let granted = suback.reason_codes.first().copied().unwrap_or(0x80);
                if granted >= 0x80 {
                    return Err(format!("SUBACK refused {filter}: code {granted:#04x}"));
                }
                reader.unread(early, writer.protocol);
                return Ok(());
            }
            Some(packet) => early.push(packet),
            None => return Err("connection closed before SUBACK".to_string()),
        }
    }
}

/// The read half: a buffer of received bytes and the decoder.
pub struct Reader {
    half: OwnedReadHalf<TcpStream>,
    /// Plaintext (MQTT bytes) not yet decoded.
    buf: BytesMut,
    protocol: Protocol,
    cancel: CancelHandle,
    /// MQTT bytes received so far (after TLS).
    bytes_read: u64,
    tls: Option<ReadTls>,
}

/// The read half's side of a TLS connection.
struct ReadTls {
    session: Session,
    /// Ciphertext of the last `recv`.
    raw: Vec<u8>,
}

impl Reader {
    /// Decodes the next packet already buffered, without I/O.
    pub fn try_next(&mut self) -> Result<Option<Packet>, String> {
        mqtt::decode(&mut self.buf, Some(self.protocol), MAX_PACKET_SIZE)
            .map_err(|error| format!("broker sent an undecodable packet: {error:?}"))
    }

    /// Reads once more from the socket. False when the connection ended: end of stream,
    /// or the thread's canceller fired (the run is closing).
    pub async fn fill(&mut self) -> Result<bool, String> {
        if self.tls.is_some() {
            return self.fill_tls().await;
        }
        self.buf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.buf);
        let start = buf.len();
        let end = buf.capacity();
        let slice = buf.slice_mut(start..end);
        let (result, slice) = self.half.cancelable_read(slice, self.cancel.clone()).await;
        self.buf = slice.into_inner();
        match result {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.bytes_read += n as u64;
                Ok(true)
            }
            Err(error) if error.raw_os_error() == Some(libc::ECANCELED) => Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
            Err(error) => Err(format!("read failed: {error}")),
        }
    }

    /// [`Reader::fill`] over TLS: one `recv` of ciphertext, decrypted into the buffer.
    async fn fill_tls(&mut self) -> Result<bool, String> {
        let Some(tls) = &mut self.tls else {
            return Ok(false);
        };
        let mut raw = std::mem::take(&mut tls.raw);
        raw.clear();
        raw.reserve(READ_CHUNK);
        let (result, raw) = self.half.cancelable_read(raw, self.cancel.clone()).await;
        tls.raw = raw;
        match result {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc::ECANCELED) => return Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Ok(false),
            Err(error) => return Err(format!("read failed: {error}")),
        }
        let before = self.buf.len();
        let open = tls::open(&mut tls.session.borrow_mut(), &tls.raw, &mut self.buf)?;
        self.bytes_read += (self.buf.len() - before) as u64;
        Ok(open || self.buf.len() > before)
    }

    /// MQTT bytes received since the last call (after TLS, so the same with and without).
    pub fn take_bytes_read(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    /// The next packet, reading as needed; `None` when the connection ended.
    pub async fn next(&mut self) -> Result<Option<Packet>, String> {
        loop {
            if let Some(packet) = self.try_next()? {
                return Ok(Some(packet));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Puts decoded packets back in front of the buffer (re-encoded), in order.
    fn unread(&mut self, packets: Vec<Packet>, protocol: Protocol) {
        if packets.is_empty() {
            return;
        }
        let mut front = BytesMut::new();
        for packet in &packets {
            // They were decoded with this codec, so they encode.
            let _ = packet.encode(protocol, &mut front);
        }
        front.extend_from_slice(&self.buf);
        self.buf = front;
    }
}

/// The write half: packets encoded back to back, sent by [`Writer::flush`].
pub struct Writer {
    half: OwnedWriteHalf<TcpStream>,
    /// Plaintext (MQTT bytes) not yet written.
    buf: BytesMut,
    protocol: Protocol,
    cancel: CancelHandle,
    /// The connection's TLS session, shared with the reader.
    tls: Option<Session>,
    /// TLS records waiting for the socket (reused between flushes).
    cipher: Vec<u8>,
}

impl Writer {
    /// Encodes `packet` into the pending buffer.
    pub fn push(&mut self, packet: &Packet) -> Result<(), String> {
        packet
            .encode(self.protocol, &mut self.buf)
            .map_err(|error| format!("cannot encode {:?}: {error:?}", packet.packet_type()))
    }

    /// Encodes one PUBLISH into the pending buffer.
    pub fn push_publish(&mut self, publish: &PublishEncode<'_>) -> Result<(), String> {
        mqtt::encode_publish(self.protocol, publish, &mut self.buf)
            .map(|_| ())
            .map_err(|error| format!("cannot encode PUBLISH: {error:?}"))
    }

    /// Bytes waiting for [`Writer::flush`].
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything pending in one `write_all`. A write still blocked when the run
    /// closes (a broker that stopped reading) is cancelled and fails.
    pub async fn flush(&mut self) -> Result<(), String> {
        if let Some(session) = &self.tls {
            let mut cipher = std::mem::take(&mut self.cipher);
            cipher.clear();
            tls::seal(&mut session.borrow_mut(), &self.buf, &mut cipher)?;
            self.buf.clear();
            if cipher.is_empty() {
                self.cipher = cipher;
                return Ok(());
            }
            let (result, cipher) = self.half.write_all(cipher, self.cancel.clone()).await;
            self.cipher = cipher;
            return result
                .map(|_| ())
                .map_err(|error| format!("write failed: {error}"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let (result, mut buf) = self.half.write_all(buf, self.cancel.clone()).await;
        buf.clear();
        self.buf = buf;
        result
            .map(|_| ())
            .map_err(|error| format!("write failed: {error}"))
    }

    /// Sends DISCONNECT (best effort: the run is ending). After the thread's canceller
    /// fired, cancellable writes fail at once, so this one is a plain write, bounded in time.
    pub async fn disconnect(&mut self) {
        use monoio::io::AsyncWriteRentExt;
        self.buf.clear();
        if self.push(&Packet::Disconnect(Box::default())).is_err() {
            return;
        }
        let buf = match &self.tls {
            Some(session) => {
                let mut cipher = Vec::new();
                let mut conn = session.borrow_mut();
                if tls::seal(&mut conn, &self.buf, &mut cipher).is_err() {
                    return;
                }
                conn.send_close_notify();
                if tls::write_tls_all(&mut conn, &mut cipher).is_err() {
                    return;
                }
                self.buf.clear();
                cipher
            }
            None => std::mem::take(&mut self.buf).to_vec(),
        };
        let write = AsyncWriteRentExt::write_all(&mut self.half, buf);
        let _ = monoio::time::timeout(std::time::Duration::from_secs(1), write).await;
    }
}
