//! The `$CONTROL/dynamic-security/v1` command processor (spec §4, §6, §10): one request
//! payload in, one response payload plus side effects out, with Mosquitto 2.0.11's exact
//! response bytes.
//!
//! Called by the broker's control-topic hook (after the sender passed the
//! `publishClientSend` check for the request topic). The caller then, in this order:
//!
//! 1. publishes [`ControlOutcome::response`] (when `Some`) at QoS 0 to
//!    `$CONTROL/dynamic-security/v1/response`, to every subscriber allowed to receive it;
//! 2. if [`ControlOutcome::changed`], saves `store::serialise(state)` with
//!    `atomic_file::save_atomic` and installs a fresh `acl::AclSnapshot::build(state)`;
//! 3. disconnects every connection named by [`ControlOutcome::kicks`] (MQTT v5 reason
//!    0x98, no will message). Kicking after publishing fixes Mosquitto 2.0's defect where
//!    an admin changing its own rights never received the response (spec §10, §17);
//! 4. logs [`ControlOutcome::audit`] at info level.
//!
//! Every command validates all of its input before it mutates anything, so a failing
//! command changes nothing (spec §17). Commands in one request are independent and run in
//! order; there is no rollback across commands, as in Mosquitto.

mod clients;
mod fields;
mod general;
mod groups;
pub(crate) mod render;
mod roles;

pub(crate) use roles::lenient_acls;

use super::json::{self, Value};
use super::json_out::{to_compact, Out};
use super::limits::RESPONSE_BYTES_MAX;
use super::model::{DynsecState, Holders, Name};

/// Who sent the request, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// Client id of the requesting connection.
    pub client_id: &'a [u8],
    /// Username of the requesting connection, if any.
    pub username: Option<&'a [u8]>,
}

/// A set of connections to disconnect (spec §10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kick {
    /// Every connection that logged in with this username.
    Username(Name),
    /// Every connection without a username.
    Anonymous,
}

/// Kicks decided by one request, for the connections opened before it was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kicks {
    /// Whom to disconnect.
    pub who: Vec<Kick>,
    /// Only connections with an order number below this one
    /// (`crate::connection::opened_so_far` when the change was made): a client that
    /// connects after it saw the response is not kicked by a message that reaches its
    /// shard later.
    pub opened_before: u64,
}

/// Everything the caller must do after a request (see the module doc for the order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlOutcome {
    /// The response payload (compact JSON); `None` only when it would exceed the MQTT
    /// maximum payload, in which case Mosquitto sends nothing either.
    pub response: Option<Vec<u8>>,
    /// At least one command changed the state: save the file and rebuild the snapshot.
    pub changed: bool,
    /// Audit lines for the info log, e.g.
    /// `dynsec: admin-cli/admin | createClient | username=alice | password=*****`.
    pub audit: Vec<String>,
    /// Connections to disconnect, without duplicates, in the order they were decided.
    pub kicks: Vec<Kick>,
}

/// Side effects collected while commands run.
pub(super) struct Effects<'c> {
    ctx: &'c RequestContext<'c>,
    changed: bool,
    audit: Vec<String>,
    kicks: Vec<Kick>,
}

impl Effects<'_> {
    /// Marks the state as changed (the caller saves and rebuilds).
    pub(super) fn changed(&mut self) {
        self.changed = true;
    }

    /// Disconnects a username.
    pub(super) fn kick_username(&mut self, username: &[u8]) {
        self.push_kick(Kick::Username(username.to_vec()));
    }

    /// Disconnects everyone in `holders`.
    pub(super) fn kick_holders(&mut self, holders: Holders) {
        for username in holders.usernames {
            self.push_kick(Kick::Username(username));
        }
        if holders.anonymous {
            self.push_kick(Kick::Anonymous);
        }
    }

    /// Disconnects every connection without a username.
    pub(super) fn kick_anonymous(&mut self) {
        self.push_kick(Kick::Anonymous);
    }

    fn push_kick(&mut self, kick: Kick) {
        if !self.kicks.contains(&kick) {
            self.kicks.push(kick);
        }
    }

    /// Records `dynsec: <clientid>/<username> | <command> | key=value | …`, Mosquitto's
    /// audit line format (an absent username prints as `(null)`, like glibc's printf).
    pub(super) fn audit(&mut self, command: &str, fields: &[(&str, &[u8])]) {
        let mut line = format!(
            "dynsec: {}/{} | {command}",
            printable(self.ctx.client_id),
            self.ctx
                .username
                .map_or_else(|| "(null)".to_owned(), printable),
        );
        for (key, value) in fields {
            line.push_str(&format!(" | {key}={}", printable(value)));
        }
        self.audit.push(line);
    }
}

/// Bytes as text for a log line: lossy UTF-8 with control characters escaped, so that a
/// name can never forge a log line.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The result of one command.
pub(super) enum Reply {
    /// Success without data.
    Done,
    /// Success with a `data` object.
    Data(Out),
    /// Failure with Mosquitto's exact error text.
    Error(&'static str),
}

type Handler = fn(&mut DynsecState, &Value, &mut Effects<'_>) -> Reply;

/// Every command of the 2.0.11 plugin, by canonical name.
const COMMANDS: &[(&str, Handler)] = &[
    ("setDefaultACLAccess", general::set_default_acl_access),
    ("getDefaultACLAccess", general::get_default_acl_access),
    ("setAnonymousGroup", general::set_anonymous_group),
    ("getAnonymousGroup", general::get_anonymous_group),
    ("createClient", clients::create),
    ("deleteClient", clients::delete),
    ("getClient", clients::get),
    ("listClients", clients::list),
    ("setClientId", clients::set_id),
    ("setClientPassword", clients::set_password),
    ("enableClient", clients::enable),
    ("disableClient", clients::disable),
    ("modifyClient", clients::modify),
    ("addClientRole", clients::add_role),
    ("removeClientRole", clients::remove_role),
    ("createGroup", groups::create),
    ("deleteGroup", groups::delete),
    ("getGroup", groups::get),
    ("listGroups", groups::list),
    ("modifyGroup", groups::modify),
    ("addGroupClient", groups::add_client),
    ("removeGroupClient", groups::remove_client),
    ("addGroupRole", groups::add_role),
    ("removeGroupRole", groups::remove_role),
    ("createRole", roles::create),
    ("deleteRole", roles::delete),
    ("getRole", roles::get),
    ("listRoles", roles::list),
    ("modifyRole", roles::modify),
    ("addRoleACL", roles::add_acl),
    ("removeRoleACL", roles::remove_acl),
];

/// Handles one request payload (spec §4): parses the envelope, runs each command in
/// order, and returns the response and side effects. Never panics on any input.
pub fn handle_request(
    state: &mut DynsecState,
    payload: &[u8],
    ctx: &RequestContext<'_>,
) -> ControlOutcome {
    let mut fx = Effects {
        ctx,
        changed: false,
        audit: Vec::new(),
        kicks: Vec::new(),
    };
    let entries = match json::parse(payload) {
        Err(_) => vec![error_entry(
            b"Unknown command",
            "Payload not valid JSON",
            None,
        )],
        Ok(tree) => match tree.get("commands").and_then(Value::as_array) {
            Some(commands) if tree.is_object() => run_commands(state, commands, &mut fx),
            _ => vec![error_entry(
                b"Unknown command",
                "Invalid/missing commands",
                None,
            )],
        },
    };
    if fx.changed {
        state.generation += 1;
    }
    debug_assert_eq!(state.check_invariants(), Ok(()));
    let response = to_compact(&Out::Object(vec![("responses", Out::Array(entries))]));
    ControlOutcome {
        response: (response.len() <= RESPONSE_BYTES_MAX).then_some(response),
        changed: fx.changed,
        audit: fx.audit,
        kicks: fx.kicks,
    }
}

/// Runs the elements of `commands` (spec §4.4), including the 2.0.11 behaviour of
/// continuing after a non-object or a missing command name and of repeating the previous
/// command's `correlationData` on those entries.
fn run_commands(state: &mut DynsecState, commands: &[Value], fx: &mut Effects<'_>) -> Vec<Out> {
    let mut entries = Vec::with_capacity(commands.len());
    let mut correlation: Option<&[u8]> = None;
    for command in commands {
        if !command.is_object() {
            entries.push(error_entry(
                b"Unknown command",
                "Command not an object",
                correlation,
            ));
            continue;
        }
        let Some(name) = command.get("command").and_then(Value::as_bytes) else {
            entries.push(error_entry(
                b"Unknown command",
                "Missing command",
                correlation,
            ));
            continue;
        };
        correlation = match command.get("correlationData") {
            None => None,
            Some(Value::String(data)) => Some(data),
            Some(_) => {
                entries.push(error_entry(
                    name,
                    "Invalid correlationData data type.",
                    None,
                ));
                break;
            }
        };
        let Some((canonical, handler)) = COMMANDS
            .iter()
            .find(|(known, _)| known.as_bytes().eq_ignore_ascii_case(name))
        else {
            entries.push(error_entry(name, "Unknown command", correlation));
            continue;
        };
        let reply = handler(state, command, fx);
        entries.push(entry(canonical.as_bytes(), reply, correlation));
    }
    entries
}

fn error_entry(command: &[u8], error: &'static str, correlation: Option<&[u8]>) -> Out {
    entry(command, Reply::Error(error), correlation)
}

/// `{"command":…[,"error":…|,"data":…][,"correlationData":…]}`.
fn entry(command: &[u8], reply: Reply, correlation: Option<&[u8]>) -> Out {
    let mut members = vec![("command", Out::str(command))];
    match reply {
        Reply::Done => {}
        Reply::Data(data) => members.push(("data", data)),
        Reply::Error(text) => members.push(("error", Out::Str(text.as_bytes().to_vec()))),
    }
    if let Some(data) = correlation {
        members.push(("correlationData", Out::str(data)));
    }
    Out::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_follow_mosquitto_and_cannot_forge_lines() {
        let mut state = DynsecState::new();
        state.set_password_policy(crate::dynsec::password::PasswordPolicy {
            iterations: 1,
            ..Default::default()
        });
        let admin = RequestContext {
            client_id: b"admin-cli",
            username: Some(b"admin"),
        };
        let outcome = handle_request(
            &mut state,
            br#"{"commands":[{"command":"createClient","username":"alice","password":"secret"},
            {"command":"createClient","username":"bob"},{"command":"getClient","username":"nope"}]}"#,
            &admin,
        );
        assert_eq!(
            outcome.audit,
            [
                "dynsec: admin-cli/admin | createClient | username=alice | password=*****",
                "dynsec: admin-cli/admin | createClient | username=bob | password=no password",
            ]
        );
        let anonymous = RequestContext {
            client_id: b"evil\ninjected",
            username: None,
        };
        let outcome = handle_request(
            &mut state,
            br#"{"commands":[{"command":"listClients"}]}"#,
            &anonymous,
        );
        assert_eq!(
            outcome.audit,
            ["dynsec: evil\\ninjected/(null) | listClients"]
        );
        assert!(outcome.audit.iter().all(|l| !l.contains("secret")));
    }
}
