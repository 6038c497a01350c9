//! The raw layer: configuration lines exactly as written, each with its file and line.
//!
//! This is the "lowargs" half of the config (after ripgrep's `flags/lowargs.rs`): it knows
//! Mosquitto's lexical rules and nothing about what an option means. `resolve` walks the
//! [`RawLine`]s and builds the typed [`super::Config`].
//!
//! Mosquitto's rules, reproduced here (`src/conf.c`, `config__read_file_core`):
//! - a line is a comment only when `#` is its very first character;
//! - trailing CR/LF are removed, and a line that is then empty (or only spaces) is skipped;
//! - tokens are split on the space character only: a tab is part of a token, so a
//!   tab-indented line has a key starting with a tab (and is an unknown option);
//! - text after the key is kept as written, because some options take "the rest of the
//!   line" (paths, plugin options) and others take only the next token.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::source::{ReadError, Source};

/// One non-comment line: its key and the text after the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number in its file.
    pub line: usize,
    /// The option name, e.g. `listener` (may contain tabs: Mosquitto splits on spaces only).
    pub key: String,
    /// Everything after the key, as written (leading spaces included).
    pub rest: String,
}

impl RawLine {
    /// A cursor over the arguments after the key.
    pub fn args(&self) -> Args<'_> {
        Args { rest: &self.rest }
    }
}

/// Splits a file's bytes into [`RawLine`]s, skipping comments and blank lines.
///
/// Fails only on a line that is not valid UTF-8 (Mosquitto: "Malformed UTF-8").
pub fn split_lines(file: &Path, bytes: &[u8]) -> Result<Vec<RawLine>, ConfigError> {
    let mut lines = Vec::new();
    for (index, mut line) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        while let [head @ .., b'\r' | b'\n'] = line {
            line = head;
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| ConfigError::at(file, number, "Malformed UTF-8 in configuration."))?;
        let trimmed = text.trim_start_matches(' ');
        if trimmed.is_empty() {
            continue;
        }
        let (key, rest) = match trimmed.find(' ') {
            Some(at) => (&trimmed[..at], &trimmed[at..]),
            None => (trimmed, ""),
        };
        lines.push(RawLine {
            line: number,
            key: key.to_string(),
            rest: rest.to_string(),
        });
    }
    Ok(lines)
}

/// Reads and splits one configuration file.
///
/// The errors have line 0 and Mosquitto 2.0.11's wording:
/// `Error: Unable to open config file X.` and `Error: Config file X is a directory.`
pub fn read_file(source: &dyn Source, path: &Path) -> Result<Vec<RawLine>, ConfigError> {
    let bytes = source.read(path).map_err(|e| match e {
        ReadError::IsDirectory => ConfigError::at(
            path,
            0,
            format!("Config file {} is a directory.", path.display()),
        ),
        ReadError::Io(_) => ConfigError::at(
            path,
            0,
            format!("Unable to open config file {}.", path.display()),
        ),
    })?;
    split_lines(path, &bytes)
}

/// The files `include_dir dir` loads: every `*.conf` entry (with a name longer than `.conf`),
/// in Mosquitto's order (see [`mosquitto_name_order`]).
///
/// Returns the error message (without `Error: `) when the directory cannot be listed.
pub fn include_files(source: &dyn Source, dir: &str) -> Result<Vec<PathBuf>, String> {
    let names = source
        .list_dir(Path::new(dir))
        .map_err(|_| format!("Unable to open include_dir '{dir}'."))?;
    let mut names: Vec<String> = names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.len() > ".conf".len() && n.ends_with(".conf"))
        .collect();
    names.sort_by(|a, b| mosquitto_name_order(a, b));
    Ok(names.into_iter().map(|n| Path::new(dir).join(n)).collect())
}

/// Mosquitto's `include_dir` sort order (`scmp_p` in `src/conf_includedir.c`): compare
/// letters case-insensitively first and, for the same letter, upper case first; so
/// `00.conf, A.conf, a.conf, B.conf, b.conf`. A prefix sorts before the longer name.
pub fn mosquitto_name_order(a: &str, b: &str) -> Ordering {
    for (x, y) in a.bytes().zip(b.bytes()) {
        let folded = x.to_ascii_uppercase().cmp(&y.to_ascii_uppercase());
        if folded != Ordering::Equal {
            return folded;
        }
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// A cursor over the text after an option's key, with Mosquitto's two ways to read it.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    rest: &'a str,
}

impl<'a> Args<'a> {
    /// The next space-separated token (`strtok(NULL, " ")`), or `None` at the end of the line.
    pub fn next_token(&mut self) -> Option<&'a str> {
        let text = self.rest.trim_start_matches(' ');
        if text.is_empty() {
            self.rest = text;
            return None;
        }
        let end = text.find(' ').unwrap_or(text.len());
        self.rest = &text[end..];
        Some(&text[..end])
    }

    /// The rest of the line with surrounding blanks removed (`conf__parse_string`), or
    /// `None` when nothing but blanks is left.
    pub fn rest_trimmed(&mut self) -> Option<&'a str> {
        let text = self.rest.trim_matches(|c: char| c.is_ascii_whitespace());
        self.rest = "";
        (!text.is_empty()).then_some(text)
    }

    /// The rest of the line with only leading blanks removed (plugin option values keep
    /// trailing spaces, as in Mosquitto), or `None` when nothing is left.
    pub fn rest_untrimmed_end(&mut self) -> Option<&'a str> {
        let text = self.rest.trim_start_matches([' ', '\t']);
        self.rest = "";
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(usize, String, String)> {
        split_lines(Path::new("t.conf"), text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|l| (l.line, l.key, l.rest))
            .collect()
    }

    #[test]
    fn comments_only_at_the_first_character() {
        let got = keys("# comment\n  # not a comment\nlistener 1883 # trailing\n");
        assert_eq!(
            got,
            vec![
                (2, "#".to_string(), " not a comment".to_string()),
                (3, "listener".to_string(), " 1883 # trailing".to_string()),
            ]
        );
    }

    #[test]
    fn blank_lines_and_crlf_are_skipped() {
        let got = keys("\r\n   \nport 1883\r\n\n");
        assert_eq!(got, vec![(3, "port".to_string(), " 1883".to_string())]);
    }

    #[test]
    fn tabs_are_not_separators() {
        let got = keys("\tlistener 1883\nallow_anonymous\ttrue\n");
        assert_eq!(got[0].1, "\tlistener");
        assert_eq!(got[1].1, "allow_anonymous\ttrue");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = split_lines(Path::new("t.conf"), b"port 1883\nuser \xff\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.message, "Error: Malformed UTF-8 in configuration.");
    }

    #[test]
    fn args_tokens_and_rest() {
        let line = RawLine {
            line: 1,
            key: "x".into(),
            rest: "  a  b c  ".into(),
        };
        let mut args = line.args();
        assert_eq!(args.next_token(), Some("a"));
        assert_eq!(args.rest_trimmed(), Some("b c"));
        assert_eq!(args.next_token(), None);
        let mut args = line.args();
        assert_eq!(args.rest_untrimmed_end(), Some("a  b c  "));
    }

    #[test]
    fn include_order_is_mosquittos() {
        let mut names = vec![
            "b.conf", "B.conf", "a.conf", "A.conf", "00.conf", "_x.conf", "a",
        ];
        names.sort_by(|a, b| mosquitto_name_order(a, b));
        assert_eq!(
            names,
            vec!["00.conf", "A.conf", "a", "a.conf", "B.conf", "b.conf", "_x.conf"]
        );
    }
}
