//! `http_dir`: the static files a websockets listener serves to plain HTTP GET requests, as
//! Mosquitto does (a dashboard next to the broker).
//!
//! Owns the mapping from a request target to a file of the listener's directory and the
//! response heads; called by `runtime::files`, which streams the file. What a client may
//! reach is decided here, in two steps that each suffice on their own:
//! - [`relative_path`] (pure) decodes the target and resolves `.` and `..` segments without
//!   ever climbing above the root, so `/../x` is `/x`, as with Mosquitto's libwebsockets;
//! - [`open`] then canonicalises the path and refuses (403) anything whose real path is not
//!   inside the canonical root: a symbolic link cannot lead out of the directory.
//!
//! Mosquitto 2.0.11's answers are followed where a client sees them: `/` and `dir/` serve
//! `index.html`, a directory without the slash redirects (302) to it, a missing file is
//! 404, a target outside the root 403, methods other than GET and HEAD 405. Unlike
//! Mosquitto, responses carry a `Content-Type` for common extensions (browsers refuse module
//! scripts without one) and HEAD gets no body.
//!
//! `open` runs on the shard thread with `std::fs`: a few metadata calls, and it opens with
//! `O_NONBLOCK` so a FIFO planted in the directory cannot block the thread; the runtime reads
//! the file in [`CHUNK`]-sized pieces between socket writes, so one request holds the shard
//! for at most one such read at a time.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use crate::limits::STATIC_FILE_CHUNK as CHUNK;

/// A plain HTTP request on a listener that serves files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    /// HEAD: the head only.
    pub head_only: bool,
    /// The request target as sent (`/dir/file.html?x=1`).
    pub target: String,
}

/// What to answer.
#[derive(Debug)]
pub enum Answer {
    /// 200 with this file (opened, regular) of `size` bytes.
    File {
        file: File,
        size: u64,
        content_type: Option<&'static str>,
        path: PathBuf,
    },
    /// 302 to this location (a directory asked for without its trailing slash).
    Redirect(String),
    /// An error status (400, 403, 404, 500).
    Status(u16),
}

/// The path below the root that `target` names (percent-decoded, `.`/`..` resolved, never
/// above the root; `index.html` for a directory), or the error status.
pub fn relative_path(target: &str) -> Result<PathBuf, u16> {
    // Origin form only ("/path"); Mosquitto answers other forms 403.
    if !target.starts_with('/') {
        return Err(403);
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_decode(path).ok_or(400u16)?;
    if decoded.contains(&0) {
        return Err(404);
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let directory = decoded.ends_with(b"/")
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || segments.is_empty();
    let mut relative = PathBuf::new();
    for segment in segments {
        relative.push(std::ffi::OsStr::from_bytes(segment));
    }
    if directory {
        relative.push("index.html");
    }
    Ok(relative)
}

/// The answer to `request` from the canonical directory `root`.
pub fn open(root: &Path, request: &FileRequest) -> Answer {
    let relative = match relative_path(&request.target) {
        Ok(relative) => relative,
        Err(status) => return Answer::Status(status),
    };
    let real = match root.join(&relative).canonicalize() {
        Ok(real) => real,
        Err(error) => return Answer::Status(error_status(&error)),
    };
    if !real.starts_with(root) {
        return Answer::Status(403);
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&real);
    let file = match opened {
        Ok(file) => file,
        Err(error) => return Answer::Status(error_status(&error)),
    };
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(error) => return Answer::Status(error_status(&error)),
    };
    if metadata.is_dir() {
        let path = request.target.split(['?', '#']).next().unwrap_or("/");
        return Answer::Redirect(format!("{path}/"));
    }
    if !metadata.is_file() {
        return Answer::Status(403);
    }
    Answer::File {
        content_type: content_type(&real),
        size: metadata.len(),
        file,
        path: real,
    }
}

/// The status for a file system error, as Mosquitto maps `realpath`'s errors.
fn error_status(error: &io::Error) -> u16 {
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => 404,
        Some(libc::EACCES | libc::EPERM) => 403,
        Some(libc::ENAMETOOLONG) => 414,
        _ => 500,
    }
}

/// The `Content-Type` for a file name's extension, if it is a common web one.
pub fn content_type(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// The head of a 200 response for `size` bytes.
pub fn ok_head(size: u64, content_type: Option<&str>) -> Vec<u8> {
    let content_type = content_type.map_or_else(String::new, |t| format!("Content-Type: {t}\r\n"));
    format!(
        "HTTP/1.1 200 OK\r\nServer: culex\r\n{content_type}Content-Length: {size}\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A complete response for an error status or a redirect.
pub fn other_response(answer: &Answer, head_only: bool) -> Vec<u8> {
    let (status, location) = match answer {
        Answer::Redirect(location) => (302, Some(location.as_str())),
        Answer::Status(status) => (*status, None),
        Answer::File { .. } => (200, None),
    };
    let reason = match status {
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        _ => "Internal Server Error",
    };
    let body = format!("<html><body><h1>{status} {reason}</h1></body></html>\n");
    let location = location.map_or_else(String::new, |l| format!("Location: {l}\r\n"));
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: culex\r\n{location}Content-Type: text/html; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    response.into_bytes()
}

/// `%XX` decoding; `None` for a malformed escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_inside_the_root_whatever_their_dots_and_escapes() {
        let cases = [
            ("/", Ok("index.html")),
            ("/index.html?x=1#top", Ok("index.html")),
            ("//a//b.css", Ok("a/b.css")),
            ("/sub/", Ok("sub/index.html")),
            ("/sub", Ok("sub")),
            ("/sub/../index.html", Ok("index.html")),
            ("/../../etc/passwd", Ok("etc/passwd")),
            ("/%2e%2e/%2E%2E/etc/passwd", Ok("etc/passwd")),
            ("/a/%2f..%2f..%2fb", Ok("b")),
            ("/sub/..", Ok("index.html")),
            ("/%69ndex.html", Ok("index.html")),
            ("/a%00b", Err(404)),
            ("/a%zz", Err(400)),
            ("/a%2", Err(400)),
            ("index.html", Err(403)),
            ("http://host/index.html", Err(403)),
        ];
        for (target, expected) in cases {
            let got = relative_path(target);
            assert_eq!(got, expected.map(PathBuf::from), "{target}");
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("culex-static-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www/sub")).expect("test dir");
        dir
    }

    fn status(answer: Answer) -> (u16, String) {
        match answer {
            Answer::File { size, path, .. } => (200, format!("{size} {}", path.display())),
            Answer::Redirect(location) => (302, location),
            Answer::Status(status) => (status, String::new()),
        }
    }

    #[test]
    fn files_symlinks_directories_and_fifos() {
        let base = dir("open");
        let www = base.join("www");
        std::fs::write(www.join("index.html"), "<h1>hi</h1>").expect("write");
        std::fs::write(base.join("secret.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(base.join("secret.txt"), www.join("escape.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink("index.html", www.join("alias.html")).expect("symlink");
        let fifo = std::ffi::CString::new(www.join("fifo").as_os_str().as_bytes()).expect("c");
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let root = www.canonicalize().expect("root");
        let get = |target: &str| {
            status(open(
                &root,
                &FileRequest {
                    head_only: false,
                    target: target.to_string(),
                },
            ))
        };
        let index = format!("11 {}", root.join("index.html").display());
        assert_eq!(get("/"), (200, index.clone()));
        assert_eq!(get("/alias.html"), (200, index));
        assert_eq!(get("/escape.txt").0, 403);
        assert_eq!(get("/../secret.txt").0, 404);
        assert_eq!(get("/sub"), (302, "/sub/".to_string()));
        assert_eq!(get("/sub/").0, 404);
        assert_eq!(get("/index.html/").0, 404);
        assert_eq!(get("/fifo").0, 403);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn heads_carry_length_type_and_close() {
        let head = String::from_utf8(ok_head(12, content_type(Path::new("a.HTML")))).expect("a");
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nServer: culex\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: 12\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(content_type(Path::new("x.bin")), None);
        let redirect = other_response(&Answer::Redirect("/sub/".into()), true);
        let redirect = String::from_utf8(redirect).expect("ascii");
        assert!(redirect.starts_with("HTTP/1.1 302 Found\r\n"), "{redirect}");
        assert!(redirect.contains("Location: /sub/\r\n") && redirect.ends_with("\r\n\r\n"));
    }
}
