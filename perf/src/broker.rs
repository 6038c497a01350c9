//! Starting and stopping a broker process for `compare` and `smoke`: a temporary
//! mosquitto.conf-syntax config on a free loopback port (optionally a TLS listener and
//! the dynamic-security plugin with its file), wait until an MQTT client gets a CONNACK
//! (over TLS and with a login when the run uses them), then SIGTERM (SIGKILL after a
//! bound) and a report of how the process ended.
//!
//! Owns the child process and its temporary directory (config, dynsec file, log). Both
//! Culex and Mosquitto read the same file; Culex also gets `threads N` when asked.

use crate::tls::TlsClient;
use bytes::BytesMut;
use shards::mqtt::{self, Connect, ConnectProperties, Packet, Protocol};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a broker may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a broker may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What goes into a broker's config besides the listener.
#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {
    /// `threads N` (Culex only).
    pub threads: Option<usize>,
    /// `max_queued_messages`.
    pub max_queued: Option<u64>,
    /// `max_queued_bytes`.
    pub max_queued_bytes: Option<u64>,
    /// `max_inflight_messages`.
    pub max_inflight: Option<u64>,
    /// Extra lines, verbatim.
    pub extra: Vec<String>,
    /// `certfile`/`keyfile` of a TLS listener.
    pub tls: Option<ServerTls>,
    /// The dynamic-security plugin and its file.
    pub dynsec: Option<DynsecSetup>,
}

/// A TLS listener's certificate and key.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// `certfile`.
    pub cert: PathBuf,
    /// `keyfile`.
    pub key: PathBuf,
}

/// The dynamic-security plugin with a generated file (written fresh into the broker's
/// directory at every start, since brokers may rewrite it).
#[derive(Clone, Debug)]
pub struct DynsecSetup {
    /// `plugin` path.
    pub plugin: PathBuf,
    /// `dynamic-security.json` contents.
    pub file_text: Arc<String>,
}

/// Name of the dynsec file in the broker's directory.
const DYNSEC_FILE: &str = "dynamic-security.json";

/// The config text for a broker listening on `port`, with its files in `dir` (pure,
/// tested).
pub fn config_text(port: u16, config: &BrokerConfig, is_culex: bool, dir: &Path) -> String {
    let mut text = format!("listener {port} 127.0.0.1\n");
    if let Some(tls) = &config.tls {
        text.push_str(&format!(
            "certfile {}\nkeyfile {}\n",
            tls.cert.display(),
            tls.key.display()
        ));
    }
    match &config.dynsec {
        Some(dynsec) => text.push_str(&format!(
            "allow_anonymous false\nplugin {}\nplugin_opt_config_file {}\n",
            dynsec.plugin.display(),
            dir.join(DYNSEC_FILE).display()
        )),
        None => text.push_str("allow_anonymous true\n"),
    }
    if let Some(n) = config.max_queued {
        text.push_str(&format!("max_queued_messages {n}\n"));
    }
    if let Some(n) = config.max_queued_bytes {
        text.push_str(&format!("max_queued_bytes {n}\n"));
    }
    if let Some(n) = config.max_inflight {
        text.push_str(&format!("max_inflight_messages {n}\n"));
    }
    if is_culex {
        if let Some(n) = config.threads {
            text.push_str(&format!("threads {n}\n"));
        }
    }
    for line in &config.extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// True when `name` or the file name of `path` says Culex.
pub fn is_culex(name: &str, path: &Path) -> bool {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    name.contains("culex") || file.contains("culex")
}

/// A running broker.
pub struct Broker {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Directory with `broker.conf` and `broker.log`.
    pub dir: PathBuf,
}

/// How a broker ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// It had exited before we stopped it.
    pub died_early: bool,
    /// It needed SIGKILL.
    pub killed: bool,
    /// Exit status text.
    pub status: String,
    /// The last lines of its log.
    pub log_tail: String,
}

impl Broker {
    /// Starts `path -c <config>` on a free loopback port and waits until `probe` gets a
    /// CONNACK from it.
    pub fn start(
        path: &Path,
        name: &str,
        config: &BrokerConfig,
        probe: &Probe,
    ) -> Result<Broker, String> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("culex-perf-{}-{name}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let conf = dir.join("broker.conf");
        if let Some(dynsec) = &config.dynsec {
            let file = dir.join(DYNSEC_FILE);
            std::fs::write(&file, dynsec.file_text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        let text = config_text(port, config, is_culex(name, path), &dir);
        std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let log = std::fs::File::create(dir.join("broker.log"))
            .map_err(|e| format!("cannot create the broker log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file: {e}"))?;
        let child = Command::new(path)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let mut broker = Broker {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        broker.wait_ready(name, probe)?;
        Ok(broker)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_ready(&mut self, name: &str, probe: &Probe) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if !self.alive() {
                let ended = self.stop();
                return Err(format!(
                    "{name} exited at start ({}); log:\n{}",
                    ended.status, ended.log_tail
                ));
            }
            match probe.connack(self.address) {
                Ok(()) => return Ok(()),
                Err(error) => last = error,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ended = self.stop();
        Err(format!(
            "{name} gave no CONNACK on {} within {:?} (last: {last}); log:\n{}",
            self.address, START_TIMEOUT, ended.log_tail
        ))
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; reaps the process.
    pub fn stop(&mut self) -> Ended {
        let died_early = !self.alive();
        let mut killed = false;
        if !died_early {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.alive() {
                killed = true;
                let _ = self.child.kill();
            }
        }
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(error) => format!("wait failed: {error}"),
        };
        Ended {
            died_early,
            killed,
            status,
            log_tail: self.log_tail(20),
        }
    }

    /// The last `lines` lines of the broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("broker.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Removes the temporary directory.
    pub fn remove_dir(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How the start-up check connects: like the run's clients (TLS, login) so that a broker
/// counts as ready only when those clients can get in (Culex binds its listeners before
/// it has loaded the dynamic-security file).
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// TLS, when the listener uses it.
    pub tls: Option<TlsClient>,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(String, String)>,
}

impl Probe {
    /// One CONNECT (MQTT 3.1.1, clean session) and a successful CONNACK, then DISCONNECT.
    pub fn connack(&self, address: SocketAddr) -> Result<(), String> {
        let tcp = TcpStream::connect_timeout(&address, Duration::from_millis(200))
            .map_err(|e| format!("connect: {e}"))?;
        let io_timeout = Some(Duration::from_secs(2));
        tcp.set_read_timeout(io_timeout)
            .and_then(|()| tcp.set_write_timeout(io_timeout))
            .map_err(|e| format!("socket timeouts: {e}"))?;
        match &self.tls {
            Some(tls) => {
                let conn = rustls::ClientConnection::new(tls.config(), tls.server_name())
                    .map_err(|e| format!("TLS: {e}"))?;
                self.exchange(rustls::StreamOwned::new(conn, tcp))
            }
            None => self.exchange(tcp),
        }
    }

    fn exchange(&self, mut stream: impl Read + Write) -> Result<(), String> {
        let protocol = Protocol::V311;
        let connect = Connect {
            protocol,
            clean_start: true,
            keep_alive: 10,
            properties: ConnectProperties::default(),
            client_id: mqtt::ByteStr::copy_from_str(&format!(
                "culex-perf-probe-{}",
                std::process::id()
            )),
            will: None,
            username: self
                .credentials
                .as_ref()
                .map(|(u, _)| mqtt::ByteStr::copy_from_str(u)),
            password: self
                .credentials
                .as_ref()
                .map(|(_, p)| bytes::Bytes::copy_from_slice(p.as_bytes())),
        };
        let mut out = BytesMut::new();
        Packet::Connect(Box::new(connect))
            .encode(protocol, &mut out)
            .map_err(|e| format!("encode CONNECT: {e:?}"))?;
        stream
            .write_all(&out)
            .and_then(|()| stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        let mut input = BytesMut::new();
        let mut chunk = [0u8; 1024];
        loop {
            match mqtt::decode(&mut input, Some(protocol), 1 << 16) {
                Ok(Some(Packet::ConnAck(ack))) if ack.reason_code == 0 => break,
                Ok(Some(Packet::ConnAck(ack))) => {
                    return Err(format!("CONNACK refused, code {:#04x}", ack.reason_code))
                }
                Ok(Some(other)) => return Err(format!("got {:?}", other.packet_type())),
                Ok(None) => {}
                Err(e) => return Err(format!("undecodable answer: {e:?}")),
            }
            let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before CONNACK".to_string());
            }
            input.extend_from_slice(&chunk[..n]);
        }
        out.clear();
        let _ = Packet::Disconnect(Box::default()).encode(protocol, &mut out);
        let _ = stream.write_all(&out).and_then(|()| stream.flush());
        Ok(())
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_listener_limits_and_culex_threads() {
        let config = BrokerConfig {
            threads: Some(2),
            max_queued: Some(1000),
            max_queued_bytes: None,
            max_inflight: Some(32),
            extra: vec!["set_tcp_nodelay true".into()],
            tls: None,
            dynsec: None,
        };
        let dir = Path::new("/tmp/b");
        let culex = config_text(18830, &config, true, dir);
        assert_eq!(
            culex,
            "listener 18830 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000\n\
             max_inflight_messages 32\nthreads 2\nset_tcp_nodelay true\n"
        );
        assert!(!config_text(18830, &config, false, dir).contains("threads"));
        let secured = BrokerConfig {
            tls: Some(ServerTls {
                cert: "/c/server.crt".into(),
                key: "/c/server.key".into(),
            }),
            dynsec: Some(DynsecSetup {
                plugin: "/lib/dynsec.so".into(),
                file_text: Arc::new(String::new()),
            }),
            ..BrokerConfig::default()
        };
        assert_eq!(
            config_text(1, &secured, false, dir),
            "listener 1 127.0.0.1\ncertfile /c/server.crt\nkeyfile /c/server.key\n\
             allow_anonymous false\nplugin /lib/dynsec.so\n\
             plugin_opt_config_file /tmp/b/dynamic-security.json\n"
        );
        assert!(is_culex("a", Path::new("target/release/culex")));
        assert!(!is_culex("mosquitto", Path::new("/usr/sbin/mosquitto")));
    }
}
