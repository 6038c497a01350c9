//! Starting and stopping a broker process for `compare` and `smoke`: a temporary
//! mosquitto.conf-syntax config on a free loopback port, wait until the port accepts,
//! then SIGTERM (SIGKILL after a bound) and a report of how the process ended.
//!
//! Owns the child process and its temporary directory (config and log). Both Culex and
//! Mosquitto read the same file; Culex also gets `threads N` when asked.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

/// The config text for a broker listening on `port` (pure, tested).
pub fn config_text(port: u16, config: &BrokerConfig, is_culex: bool) -> String {
    let mut text = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
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
    /// Starts `path -c <config>` on a free loopback port and waits until it accepts.
    pub fn start(path: &Path, name: &str, config: &BrokerConfig) -> Result<Broker, String> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("culex-perf-{}-{name}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let conf = dir.join("broker.conf");
        let text = config_text(port, config, is_culex(name, path));
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
        broker.wait_ready(name)?;
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

    fn wait_ready(&mut self, name: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.alive() {
                let ended = self.stop();
                return Err(format!(
                    "{name} exited at start ({}); log:\n{}",
                    ended.status, ended.log_tail
                ));
            }
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ended = self.stop();
        Err(format!(
            "{name} did not accept on {} within {:?}; log:\n{}",
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
        };
        let culex = config_text(18830, &config, true);
        assert_eq!(
            culex,
            "listener 18830 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000\n\
             max_inflight_messages 32\nthreads 2\nset_tcp_nodelay true\n"
        );
        assert!(!config_text(18830, &config, false).contains("threads"));
        assert!(is_culex("a", Path::new("target/release/culex")));
        assert!(!is_culex("mosquitto", Path::new("/usr/sbin/mosquitto")));
    }
}
