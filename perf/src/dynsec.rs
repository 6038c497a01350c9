//! A `dynamic-security.json` for benchmarks: N clients with passwords, R roles of A ACLs
//! each, in Mosquitto 2.0's format (PBKDF2-SHA512 `password`/`salt`/`iterations`, hashed
//! with the broker's own code in `shards::dynsec::password`), which Culex and Mosquitto
//! both read.
//!
//! Owns the shape of the file ([`DynsecShape`]), the naming scheme the harness's clients
//! log in with ([`credentials`]) and the JSON text ([`file_text`]). Called by `compare`
//! (one file per comparison, copied into each broker's directory) and by the
//! `dynsec-file` subcommand (for `run` against a broker set up by hand).
//!
//! Every role has A ACLs: A − 3 that do not match the harness's topics, at higher
//! priorities so that they are walked first on every check, then the three that do, at
//! priority 0: `publishClientSend`, `publishClientReceive` and `subscribePattern` on
//! `perf/+/#` (every harness topic is `perf/<run>/…`). Half of the non-matching ACLs
//! share the first level (`perf/r<role>a<k>/+`), so a matcher cannot reject them by
//! the first byte. Client i has one role, `perf-role-(i mod R)`. Default access is
//! Mosquitto's: publishing and subscribing are denied unless an ACL allows them.

use crate::report::quote;
use shards::dynsec::password::{PasswordHash, PasswordPolicy};
use std::fmt::Write as _;

/// How many clients, roles and ACLs per role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynsecShape {
    /// Clients (each with a username and password).
    pub clients: usize,
    /// Roles.
    pub roles: usize,
    /// ACLs per role (at least 3: the three that let the harness work).
    pub acls_per_role: usize,
}

impl Default for DynsecShape {
    fn default() -> Self {
        DynsecShape {
            clients: 1000,
            roles: 100,
            acls_per_role: 10,
        }
    }
}

impl DynsecShape {
    /// Checks the bounds; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 || self.clients > 1_000_000 {
            return Err("--dynsec-clients must be 1..=1000000".to_string());
        }
        if self.roles == 0 || self.roles > 100_000 {
            return Err("--dynsec-roles must be 1..=100000".to_string());
        }
        if !(3..=10_000).contains(&self.acls_per_role) {
            return Err(
                "--dynsec-acls-per-role must be 3..=10000 (3 of them match the harness's topics)"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// `1000 clients, 100 roles × 10 ACLs` for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} clients, {} roles × {} ACLs",
            self.clients, self.roles, self.acls_per_role
        )
    }
}

/// Username and password of the `k`-th client of the file.
pub fn credentials(k: usize) -> (String, String) {
    (format!("perf-user-{k}"), format!("perf-pass-{k}"))
}

/// The ACL types, in the order the non-matching ACLs cycle through them.
const TYPES: [&str; 3] = [
    "publishClientSend",
    "publishClientReceive",
    "subscribePattern",
];

/// The ACLs of role `r`: `(acltype, topic, priority)`, highest priority first.
pub fn role_acls(shape: &DynsecShape, r: usize) -> Vec<(&'static str, String, usize)> {
    let decoys = shape.acls_per_role.saturating_sub(3);
    let mut acls = Vec::with_capacity(shape.acls_per_role);
    for k in 0..decoys {
        let topic = if k % 2 == 0 {
            format!("perf/r{r}a{k}/+")
        } else {
            format!("site/{r}/device/{k}/#")
        };
        acls.push((TYPES[k % TYPES.len()], topic, decoys - k));
    }
    for acl_type in TYPES {
        acls.push((acl_type, "perf/+/#".to_string(), 0));
    }
    acls
}

/// The whole `dynamic-security.json`. Hashing costs ~45 µs per client (101 iterations).
pub fn file_text(shape: &DynsecShape) -> Result<String, String> {
    shape.validate()?;
    let mut out =
        String::with_capacity(shape.clients * 300 + shape.roles * shape.acls_per_role * 100);
    out.push_str("{\n\"defaultACLAccess\": {\"publishClientSend\": false, \"publishClientReceive\": true, \"subscribe\": false, \"unsubscribe\": true},\n");
    out.push_str("\"clients\": [\n");
    for k in 0..shape.clients {
        let (username, password) = credentials(k);
        let hash = PasswordHash::new(password.as_bytes(), &PasswordPolicy::MOSQUITTO_2_0)
            .map_err(|e| format!("cannot hash a dynsec password: {e}"))?;
        let Some((hash_b64, salt_b64, iterations)) = hash.triple() else {
            return Err("the 2.0 password policy did not give a password/salt triple".into());
        };
        let _ = write!(
            out,
            "{{\"username\": {}, \"textname\": \"culex-perf client {k}\", \"roles\": [{{\"rolename\": \"perf-role-{}\"}}], \"password\": {}, \"salt\": {}, \"iterations\": {iterations}}}{}",
            quote(&username),
            k % shape.roles,
            quote(&String::from_utf8_lossy(&hash_b64)),
            quote(&String::from_utf8_lossy(&salt_b64)),
            if k + 1 < shape.clients { "," } else { "" }
        );
        out.push('\n');
    }
    out.push_str("],\n\"groups\": [],\n\"roles\": [\n");
    for r in 0..shape.roles {
        let acls: Vec<String> = role_acls(shape, r)
            .into_iter()
            .map(|(acl_type, topic, priority)| {
                format!(
                    "{{\"acltype\": \"{acl_type}\", \"topic\": {}, \"priority\": {priority}, \"allow\": true}}",
                    quote(&topic)
                )
            })
            .collect();
        let _ = write!(
            out,
            "{{\"rolename\": \"perf-role-{r}\", \"acls\": [{}]}}{}",
            acls.join(", "),
            if r + 1 < shape.roles { "," } else { "" }
        );
        out.push('\n');
    }
    out.push_str("]\n}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::dynsec::acl::{AclEvent, AclSnapshot, ClientIdentity};

    #[test]
    fn role_has_decoys_first_then_the_three_that_match() {
        let shape = DynsecShape::default();
        let acls = role_acls(&shape, 7);
        assert_eq!(acls.len(), 10);
        assert_eq!(acls[0], ("publishClientSend", "perf/r7a0/+".to_string(), 7));
        assert!(acls[..7].iter().all(|(_, t, p)| *p > 0 && t != "perf/+/#"));
        assert!(acls[7..].iter().all(|(_, t, p)| *p == 0 && t == "perf/+/#"));
    }

    #[test]
    fn the_file_loads_and_grants_exactly_the_harness_topics() {
        let shape = DynsecShape {
            clients: 5,
            roles: 2,
            acls_per_role: 6,
        };
        let text = match file_text(&shape) {
            Ok(text) => text,
            Err(e) => panic!("{e}"),
        };
        let (state, warnings) = match shards::dynsec::store::load(text.as_bytes()) {
            Ok(loaded) => loaded,
            Err(e) => panic!("the generated file does not load: {e}"),
        };
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(state.clients().len(), 5);
        assert_eq!(state.roles().len(), 2);
        let snapshot = AclSnapshot::build(&state);
        let (user, pass) = credentials(3);
        let who = ClientIdentity {
            client_id: b"c",
            username: Some(user.as_bytes()),
        };
        let allowed = |event, topic: &str| snapshot.check(event, &who, topic.as_bytes());
        assert!(allowed(AclEvent::PublishClientSend, "perf/run/p/1"));
        assert!(allowed(AclEvent::PublishClientReceive, "perf/run/p/1"));
        assert!(allowed(AclEvent::Subscribe, "perf/run/in/+"));
        assert!(allowed(AclEvent::Subscribe, "perf/run/r/#"));
        assert!(!allowed(AclEvent::PublishClientSend, "other/run/p/1"));
        assert!(!allowed(AclEvent::Subscribe, "#"));
        let hash = state
            .clients()
            .get(user.as_bytes())
            .and_then(|c| c.password.clone());
        assert!(hash.as_ref().is_some_and(|h| h.verify(pass.as_bytes())));
        assert!(!hash.is_some_and(|h| h.verify(b"wrong")));
    }
}
