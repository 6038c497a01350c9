//! Log lines in Mosquitto's format, to the destinations `log_dest` names.
//!
//! Owns the process's `log::Log` implementation. Lines are `<epoch>: <text>` (or the
//! `log_timestamp_format` strftime rendering, or no prefix with `log_timestamp false`),
//! exactly as Mosquitto writes them, because users grep and alert on them. `log_type`
//! decides which levels pass. Shards log through the `log` facade; this is the only place
//! that writes. A line costs one lock and one write: logging is never on the publish path.
//!
//! Log files are opened by [`open_files`], which `main` calls once privileges were dropped
//! to `user` (as Mosquitto 2.0 opens them after dropping), so the broker can reopen them on
//! SIGHUP; the lines logged before that wait in memory and go first. A start-up failure
//! ([`start_failure`]) always reaches stderr too, whatever `log_dest` says.

use crate::config::{LogDest, LogTypes, Logging};
use shards::message::Message;
use shards::mqtt::{ByteStr, Bytes, QoS};
use shards::runtime::{Control, Inboxes, RuntimeMsg};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The active logging configuration and open files.
struct Sink {
    types: LogTypes,
    timestamp: bool,
    timestamp_format: Option<String>,
    targets: Vec<Target>,
    /// Lines for the log files while they are not open yet (`None` once they are).
    pending: Option<Vec<String>>,
}

/// Most lines kept for log files not open yet (start-up logs a handful).
const PENDING_LINES_MAX: usize = 1000;

enum Target {
    /// Published on `$SYS/broker/log/<class>` (once `publish_to` was called).
    Topic,
    Stderr,
    Stdout,
    Syslog,
    /// A `log_dest file`: the path and, once opened, the file.
    File(PathBuf, Option<File>),
}

struct Logger {
    sink: Mutex<Option<Sink>>,
    /// Where `log_dest topic` lines go once the shards run.
    topic: OnceLock<Arc<Inboxes>>,
    /// The `log_type` set, readable without the lock so disabled lines cost nothing.
    types: AtomicU16,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger with `logging` (called once at start; `reconfigure` on reload). Log
/// files stay closed until [`open_files`].
pub fn install(logging: &Logging) {
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(None),
        topic: OnceLock::new(),
        types: AtomicU16::new(0),
    });
    let _ = log::set_logger(logger);
    reconfigure(logging);
}

/// Applies a new logging configuration and reopens log files (SIGHUP, log rotation).
pub fn reconfigure(logging: &Logging) {
    let Some(logger) = LOGGER.get() else { return };
    let Ok(mut guard) = logger.sink.lock() else {
        return;
    };
    // Before `open_files` (only at start) files stay closed and lines keep waiting.
    let pending = match guard.as_mut() {
        Some(sink) => sink.pending.take(),
        None => Some(Vec::new()),
    };
    let targets = logging
        .destinations
        .iter()
        .map(|dest| match dest {
            LogDest::Stderr => Target::Stderr,
            LogDest::Stdout { .. } => Target::Stdout,
            LogDest::Syslog => Target::Syslog,
            LogDest::File(path) => {
                let file = if pending.is_none() {
                    open_log(path)
                } else {
                    None
                };
                Target::File(path.clone(), file)
            }
            LogDest::Topic => Target::Topic,
        })
        .collect();
    logger.types.store(logging.types.bits(), Ordering::Relaxed);
    if logging.destinations.contains(&LogDest::Syslog) {
        open_syslog(logging.facility);
    }
    // The `log` crate checks its maximum level before anything else: without `debug`, a
    // debug line (the packet lines on the publish path among them) costs one compare.
    log::set_max_level(max_level(logging.types));
    *guard = Some(Sink {
        types: logging.types,
        timestamp: logging.timestamp,
        timestamp_format: logging.timestamp_format.clone(),
        targets,
        pending,
    });
}

/// The most verbose level any enabled `log_type` class needs: debug lines are the only
/// ones below `Info`.
fn max_level(types: LogTypes) -> log::LevelFilter {
    if types.contains(LogTypes::DEBUG) {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Info
    }
}

/// Opens the log files (as the user the broker now runs as) and writes the lines logged
/// since start into them. Later calls do nothing.
pub fn open_files() {
    let Some(logger) = LOGGER.get() else { return };
    let Ok(mut guard) = logger.sink.lock() else {
        return;
    };
    let Some(sink) = guard.as_mut() else { return };
    let Some(pending) = sink.pending.take() else {
        return;
    };
    for target in &mut sink.targets {
        if let Target::File(path, file) = target {
            *file = open_log(path);
            if let Some(file) = file {
                for line in &pending {
                    let _ = file.write_all(line.as_bytes());
                }
            }
        }
    }
}

/// Reports why start-up failed (or why `--test-config` found the configuration invalid):
/// each line of `message` as an error to the log destinations, and to stderr as well when
/// they did not include it, whatever `log_dest` and `log_type` say.
pub fn start_failure(message: &str) {
    let logger = LOGGER.get();
    let mut guard = logger.and_then(|logger| logger.sink.lock().ok());
    let Some(sink) = guard.as_mut().and_then(|guard| guard.as_mut()) else {
        for line in message.lines() {
            eprintln!("{}: {line}", epoch());
        }
        return;
    };
    let to_stderr = !sink.types.contains(LogTypes::ERROR)
        || !sink.targets.iter().any(|t| matches!(t, Target::Stderr));
    for line in message.lines() {
        let line = format!("{}{line}\n", prefix(sink));
        if sink.types.contains(LogTypes::ERROR) {
            let topic = logger.and_then(|logger| logger.topic.get());
            write_line(sink, topic, LogTypes::ERROR, log::Level::Error, &line);
        }
        if to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn open_log(path: &Path) -> Option<File> {
    // Created readable by its owner only, as Mosquitto creates it.
    match OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(error) => {
            eprintln!(
                "Error: Unable to open log file {} for writing: {error}.",
                path.display()
            );
            None
        }
    }
}

/// The `log_type` class of a record.
fn class(record: &log::Record<'_>) -> LogTypes {
    class_of(record.level(), record.target())
}

/// The `log_type` class of a level and target: the targets `subscribe` and `unsubscribe`
/// are those classes; Mosquitto logs its connection and lifecycle lines at notice level,
/// so `info!` is notice unless its target is `information`.
fn class_of(level: log::Level, target: &str) -> LogTypes {
    match (level, target) {
        (_, "subscribe") => LogTypes::SUBSCRIBE,
        (_, "unsubscribe") => LogTypes::UNSUBSCRIBE,
        (log::Level::Error, _) => LogTypes::ERROR,
        (log::Level::Warn, _) => LogTypes::WARNING,
        (log::Level::Info, "information") => LogTypes::INFORMATION,
        (log::Level::Info, _) => LogTypes::NOTICE,
        _ => LogTypes::DEBUG,
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let types = LogTypes::from_bits(self.types.load(Ordering::Relaxed));
        types.contains(class_of(metadata.level(), metadata.target()))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if record.level() > log::Level::Info
            && !record.target().starts_with("shards")
            && !record.target().starts_with("culex")
        {
            return;
        }
        let Ok(mut guard) = self.sink.lock() else {
            return;
        };
        let Some(sink) = guard.as_mut() else { return };
        if !sink.types.contains(class(record)) {
            return;
        }
        let line = format!("{}{}\n", prefix(sink), record.args());
        write_line(sink, self.topic.get(), class(record), record.level(), &line);
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
        let _ = std::io::stdout().flush();
    }
}

/// Writes one formatted line (ending in a newline) to every destination of `sink`; lines
/// for log files not open yet wait in `pending`.
fn write_line(
    sink: &mut Sink,
    topic: Option<&Arc<Inboxes>>,
    class: LogTypes,
    level: log::Level,
    line: &str,
) {
    for target in &mut sink.targets {
        match target {
            Target::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Target::Stdout => {
                let _ = std::io::stdout().write_all(line.as_bytes());
            }
            Target::Syslog => syslog(level, line.trim_end()),
            Target::Topic => {
                if let Some(inboxes) = topic {
                    publish_line(inboxes, class, line.trim_end());
                }
            }
            Target::File(_, Some(file)) => {
                let _ = file.write_all(line.as_bytes());
            }
            Target::File(_, None) => {}
        }
    }
    let has_file = sink.targets.iter().any(|t| matches!(t, Target::File(..)));
    if let Some(pending) = sink.pending.as_mut() {
        if has_file && pending.len() < PENDING_LINES_MAX {
            pending.push(line.to_string());
        }
    }
}

/// Seconds since the epoch, the default line prefix.
fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts publishing `log_dest topic` lines through shard 0 (called once the shards run).
pub fn publish_to(inboxes: Arc<Inboxes>) {
    if let Some(logger) = LOGGER.get() {
        let _ = logger.topic.set(inboxes);
    }
}

/// Publishes one line on Mosquitto's `$SYS/broker/log/{E,W,N,I,M/subscribe,...}` topic.
/// Best effort: a full control ring drops the line rather than block a shard. Debug lines
/// are never published (as in Mosquitto).
fn publish_line(inboxes: &Inboxes, class: LogTypes, line: &str) {
    let suffix = match class {
        c if c == LogTypes::ERROR => "E",
        c if c == LogTypes::WARNING => "W",
        c if c == LogTypes::NOTICE => "N",
        c if c == LogTypes::INFORMATION => "I",
        c if c == LogTypes::SUBSCRIBE => "M/subscribe",
        c if c == LogTypes::UNSUBSCRIBE => "M/unsubscribe",
        _ => return,
    };
    let topic = ByteStr::from(format!("$SYS/broker/log/{suffix}"));
    let message = Message::new(
        topic,
        Bytes::copy_from_slice(line.as_bytes()),
        QoS::AtMostOnce,
        false,
    );
    inboxes.try_send(0, RuntimeMsg::Control(Control::Publish(Box::new(message))));
}

/// `<epoch>: `, a strftime rendering, or nothing.
fn prefix(sink: &Sink) -> String {
    if !sink.timestamp {
        return String::new();
    }
    let now = epoch();
    match &sink.timestamp_format {
        Some(format) => format!("{}: ", strftime(format, now as libc::time_t)),
        None => format!("{now}: "),
    }
}

/// Local-time strftime through libc, as Mosquitto does.
fn strftime(format: &str, time: libc::time_t) -> String {
    let Ok(format) = std::ffi::CString::new(format) else {
        return time.to_string();
    };
    // SAFETY: an all-zero `tm` is a valid value of a plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let mut buffer = [0u8; 256];
    // SAFETY: localtime_r writes into our `tm`; strftime writes at most buffer.len() bytes
    // into our buffer and returns how many.
    let written = unsafe {
        if libc::localtime_r(&time, &mut tm).is_null() {
            return time.to_string();
        }
        libc::strftime(
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            format.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buffer[..written]).into_owned()
}

fn syslog(level: log::Level, line: &str) {
    let priority = match level {
        log::Level::Error => libc::LOG_ERR,
        log::Level::Warn => libc::LOG_WARNING,
        log::Level::Info => libc::LOG_NOTICE,
        _ => libc::LOG_DEBUG,
    };
    let Ok(text) = std::ffi::CString::new(line) else {
        return;
    };
    // SAFETY: "%s" with one valid C string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}

/// Names the process and its facility for syslog as Mosquitto does: `culex[pid]`, and
/// `log_facility` N as `local`N (default `daemon`).
fn open_syslog(facility: Option<u8>) {
    let facility = facility.map_or(libc::LOG_DAEMON, |n| {
        libc::LOG_LOCAL0 + (libc::c_int::from(n) << 3)
    });
    // SAFETY: the ident is a static C string, as openlog requires (it keeps the pointer).
    unsafe { libc::openlog(c"culex".as_ptr(), libc::LOG_PID, facility) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_debug_lines_are_below_the_maximum_level_without_debug() {
        assert_eq!(max_level(LogTypes::DEFAULT), log::LevelFilter::Info);
        assert_eq!(max_level(LogTypes::NONE), log::LevelFilter::Info);
        assert_eq!(max_level(LogTypes::ALL), log::LevelFilter::Trace);
        assert_eq!(max_level(LogTypes::DEBUG), log::LevelFilter::Trace);
        // A record the lowered maximum drops must be one that `log_type debug` alone
        // would let through: no other class loses lines to it. (The `subscribe` and
        // `unsubscribe` targets are logged at Info.)
        let levels = [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ];
        for level in levels {
            for target in ["shards::x", "culex::y", "information"] {
                if level > max_level(LogTypes::NONE) {
                    assert_eq!(class_of(level, target), LogTypes::DEBUG, "{level} {target}");
                }
            }
        }
    }
}
