//! `acl_file`: Mosquitto's classic access-control list, compiled once and checked per
//! publish, per delivery and per (un)subscribe without allocating.
//!
//! Called by the broker's access control: `load` at start-up and on SIGHUP, `check` on the
//! publish path (`Write` per incoming PUBLISH and will, `Read` per delivery including
//! retained messages) and for each SUBSCRIBE/UNSUBSCRIBE filter.
//!
//! # File format (`aclfile__parse`, 2.0.11; messages checked against the real broker)
//!
//! * Trailing blanks are dropped; a line whose first byte is `#` is a comment (`  # x` is
//!   not: "Invalid line"); tokens are separated by spaces only (a tab-indented line is an
//!   "Invalid line").
//! * `topic [read|write|readwrite|deny] <topic>` and `pattern [...] <topic>`: the topic
//!   is the rest of the line, trimmed, so it may contain spaces. Without an access word
//!   the access is `readwrite` (so `topic read` alone grants readwrite on the topic
//!   `read`). The topic must be a valid subscription filter (`+`/`#` whole levels, `#`
//!   last, at most 65535 bytes and 200 `/`).
//! * `user <username>`: the rest of the line, trimmed. `topic` lines before the first
//!   `user` line belong to clients without a username; later ones to the last named user.
//!   Two sections with the same name are one list. `pattern` lines apply to every client,
//!   wherever they are written.
//! * `pattern` without `%c`/`%u` logs "Warning: ACL pattern '…' does not contain '%c' or
//!   '%u'." and still applies. Culex also warns about `%c`/`%u` in a `topic` line, which
//!   Mosquitto takes literally.
//!
//! # Decision (`mosquitto_acl_check_default` in `src/security_default.c`, 2.0; unchanged
//! in 2.1's `acl_file__check`)
//!
//! 1. `Subscribe` and `Unsubscribe` are always allowed ("FIXME - implement ACL
//!    subscription strings"): a client may subscribe to `#` and then receives only what
//!    `Read` lets through, message by message (SUBACK grants QoS 0 for a filter it cannot
//!    read: real-broker run U4/U10).
//! 2. The client's own list: the anonymous rules when it has no username, else the rules
//!    of its `user` section (none if it has no section; the anonymous rules never apply to
//!    a client with a username). A matching `deny` refuses; otherwise a matching rule whose
//!    access includes the request (`read` for Read, `write` for Write, `readwrite` for
//!    both) allows.
//! 3. If that did not decide and there are `pattern` lines: a username or client id
//!    containing `+` or `#` is refused outright (Mosquitto logs "ACL denying access to
//!    client with dangerous username/client id"); then pattern denies, then pattern grants,
//!    with `%c`/`%u` substituted (see `filter.rs`; `%u` lines never match a client without a
//!    username). A user's own grant therefore beats a pattern deny (run P8).
//! 4. Otherwise refused.
//!
//! Matching is MQTT filter matching with the `$` rule: a filter starting with `+` or `#`
//! never matches `$SYS/…` or any other `$` topic, so `$SYS` needs its own rule (run S1/S2).
//! Writes to `$SYS` and Read/Write on `$share/…` are refused by the broker before the ACL
//! file is consulted (`acl__check_dollar` in `src/security.c`; Culex: `shard/publish.rs`),
//! so [`AclFile::check`] answers for the file alone.

use std::path::Path;

use rustc_hash::FxHashMap;

use super::file::{read_restricted, FileKind};
use super::filter::{AclTopic, Identity};
use super::text::{display, is_c_space, next_token, numbered_lines, trim_blanks};
use super::FileError;
use crate::dynsec::validate::is_valid_acl_topic;

/// What the broker asks permission for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclAccess {
    /// A message is about to be delivered to this client (live or retained); `topic` is
    /// the message's topic. Mosquitto's `MOSQ_ACL_READ`.
    Read,
    /// This client publishes (or its will is about to be published); `topic` is the
    /// PUBLISH topic. Mosquitto's `MOSQ_ACL_WRITE`.
    Write,
    /// This client subscribes to the filter. Always allowed by an ACL file.
    Subscribe,
    /// This client unsubscribes from the filter. Always allowed by an ACL file.
    Unsubscribe,
}

/// Access bit granted by `read` and `readwrite`.
const READ: u8 = 1;
/// Access bit granted by `write` and `readwrite`.
const WRITE: u8 = 2;

/// One `topic`/`pattern` line that grants access.
#[derive(Debug, Clone)]
struct Grant {
    access: u8,
    topic: AclTopic,
}

/// The rules of one client class, denies kept apart because they are checked first.
#[derive(Debug, Clone, Default)]
struct RuleList {
    denies: Vec<AclTopic>,
    grants: Vec<Grant>,
}

impl RuleList {
    fn push(&mut self, access: u8, topic: AclTopic) {
        if access == 0 {
            self.denies.push(topic);
        } else {
            self.grants.push(Grant { access, topic });
        }
    }

    fn is_empty(&self) -> bool {
        self.denies.is_empty() && self.grants.is_empty()
    }

    fn len(&self) -> usize {
        self.denies.len() + self.grants.len()
    }

    /// `Some(false)` on a matching deny, `Some(true)` on a matching grant with the access
    /// bit, `None` when no rule decides.
    fn decide(&self, access: u8, topic: &[u8], who: &Identity<'_>) -> Option<bool> {
        if self.denies.iter().any(|deny| deny.matches(topic, who)) {
            return Some(false);
        }
        let granted = self
            .grants
            .iter()
            .any(|grant| grant.access & access != 0 && grant.topic.matches(topic, who));
        granted.then_some(true)
    }
}

/// A compiled ACL file. Immutable; share it between shards behind an `Arc` and swap it on
/// reload.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    anonymous: RuleList,
    users: FxHashMap<Box<[u8]>, RuleList>,
    patterns: RuleList,
    warnings: Vec<String>,
}

impl AclFile {
    /// Parses the text of the file at `path` (used in messages only). The first line that
    /// Mosquitto would refuse is an error naming it.
    pub fn parse(path: &Path, text: &str) -> Result<AclFile, FileError> {
        AclFile::parse_bytes(path, text.as_bytes())
    }

    /// Reads and parses `path`; [`Self::warnings`] gets Mosquitto's permission warnings
    /// too.
    pub fn load(path: &Path) -> Result<AclFile, FileError> {
        let (bytes, mut warnings) = read_restricted(path, FileKind::Acl)?;
        let mut file = AclFile::parse_bytes(path, &bytes)?;
        warnings.append(&mut file.warnings);
        file.warnings = warnings;
        Ok(file)
    }

    /// [`Self::parse`] over raw bytes (Mosquitto does not require UTF-8).
    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<AclFile, FileError> {
        let shown = path.display().to_string();
        let mut file = AclFile::default();
        let mut user: Option<Box<[u8]>> = None;
        for (number, raw) in numbered_lines(bytes) {
            let error = |message: String| FileError::at(path, number, message);
            let end = raw
                .iter()
                .rposition(|&b| !is_c_space(b))
                .map_or(0, |last| last + 1);
            let line = &raw[..end];
            if line.first() == Some(&b'#') {
                continue;
            }
            let Some((keyword, after)) = next_token(line) else {
                continue;
            };
            match keyword {
                b"topic" | b"pattern" => {
                    let (access, topic) = read_rule(after, &shown).map_err(error)?;
                    let substituted = AclTopic::pattern(topic);
                    let substitutes =
                        substituted.substitutes(false) || substituted.substitutes(true);
                    if keyword == b"pattern" {
                        if !substitutes {
                            file.warnings.push(format!(
                                "Warning: ACL pattern '{}' does not contain '%c' or '%u'.",
                                display(topic)
                            ));
                        }
                        file.patterns.push(access, substituted);
                    } else {
                        if substitutes {
                            file.warnings.push(format!(
                                "Warning: ACL topic '{}' on line {number} of acl_file \"{shown}\" \
                                 contains '%c' or '%u', which only 'pattern' lines substitute.",
                                display(topic)
                            ));
                        }
                        let rules = match &user {
                            None => &mut file.anonymous,
                            Some(name) => file.users.entry(name.clone()).or_default(),
                        };
                        rules.push(access, AclTopic::literal(topic));
                    }
                }
                b"user" => {
                    let name = after.map(trim_blanks).unwrap_or_default();
                    if name.is_empty() {
                        return Err(error(format!("Missing username in acl_file \"{shown}\"")));
                    }
                    user = Some(name.into());
                }
                _ => {
                    return Err(error(format!(
                        "Invalid line in acl_file \"{shown}\": {}",
                        display(line)
                    )))
                }
            }
        }
        Ok(file)
    }

    /// Whether the client (`client_id`, `username`; `None` for a client that gave no
    /// username) may have `access` to `topic_or_filter`: a topic name for `Read`/`Write`,
    /// a subscription filter for `Subscribe`/`Unsubscribe`. Never allocates.
    pub fn check(
        &self,
        access: AclAccess,
        client_id: &[u8],
        username: Option<&[u8]>,
        topic_or_filter: &[u8],
    ) -> bool {
        let bit = match access {
            AclAccess::Read => READ,
            AclAccess::Write => WRITE,
            AclAccess::Subscribe | AclAccess::Unsubscribe => return true,
        };
        let topic = topic_or_filter;
        if topic.is_empty() || topic.iter().any(|&b| b == b'+' || b == b'#') {
            return false;
        }
        let who = Identity {
            client_id,
            username,
        };
        let own = match username {
            None => Some(&self.anonymous),
            Some(name) => self.users.get(name),
        };
        if let Some(decision) = own.and_then(|rules| rules.decide(bit, topic, &who)) {
            return decision;
        }
        if self.refuses_identity(client_id, username) {
            return false;
        }
        self.patterns.decide(bit, topic, &who).unwrap_or(false)
    }

    /// Whether the pattern stage refuses this client outright because its username or
    /// client id contains `+` or `#`. Lets the broker log Mosquitto's notice "ACL denying
    /// access to client with dangerous username/client id" once per connection.
    pub fn refuses_identity(&self, client_id: &[u8], username: Option<&[u8]>) -> bool {
        !self.patterns.is_empty() && (is_dangerous(client_id) || username.is_some_and(is_dangerous))
    }

    /// Number of `topic` and `pattern` rules.
    pub fn len(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(RuleList::len).sum::<usize>()
    }

    /// Whether the file has no rules (every Read and Write is refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Warnings for the log: permissions (from [`Self::load`]) and suspicious lines.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The access and topic of a `topic`/`pattern` line, from what follows the keyword
/// (`strtok_r` semantics: the access word is the next space-separated token; the topic is
/// the trimmed rest, or the access word itself when nothing follows it).
fn read_rule<'a>(after: Option<&'a [u8]>, shown: &str) -> Result<(u8, &'a [u8]), String> {
    let Some((word, rest)) = after.and_then(next_token) else {
        return Err(format!("Empty topic in acl_file \"{shown}\""));
    };
    let (access, topic) = match rest.filter(|rest| !rest.is_empty()) {
        None => (READ | WRITE, word),
        Some(rest) => {
            let access = match word {
                b"read" => READ,
                b"write" => WRITE,
                b"readwrite" => READ | WRITE,
                b"deny" => 0,
                other => {
                    return Err(format!(
                        "Invalid topic access type \"{}\" in acl_file \"{shown}\"",
                        display(other)
                    ))
                }
            };
            (access, trim_blanks(rest))
        }
    };
    if topic.is_empty() || !is_valid_acl_topic(topic) {
        return Err(format!(
            "Invalid ACL topic \"{}\" in acl_file \"{shown}\"",
            display(topic)
        ));
    }
    Ok((access, topic))
}

/// A username or client id that could widen a pattern (Mosquitto's `strpbrk(…, "+#")`).
fn is_dangerous(value: &[u8]) -> bool {
    value.iter().any(|&b| b == b'+' || b == b'#')
}

#[cfg(test)]
#[path = "acl_file_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "acl_file_property.rs"]
mod property;
