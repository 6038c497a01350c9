//! Dynamic security: Mosquitto's dynamic-security plugin, socket-free (spec:
//! `shared/spec/dynsec.md`, captures: `shared/spec/dynsec-golden/`).
//!
//! Brief overview. One owner (the broker's control hook, or the replication core in
//! auth-sync mode) holds the mutable [`model::DynsecState`]; shards only ever see the
//! immutable [`acl::AclSnapshot`] compiled from it:
//!
//! ```text
//!  start-up:  bootstrap::bootstrap_if_missing ─▶ store::load_file ─▶ DynsecState
//!                                                                     │
//!  $CONTROL/dynamic-security/v1 PUBLISH                               ▼
//!      └─▶ control::handle_request(&mut state, payload, ctx) ─▶ ControlOutcome
//!              1. publish outcome.response on …/v1/response (QoS 0)
//!              2. if outcome.changed: atomic_file::save_atomic(path, store::serialise(&state))
//!                                     Arc::new(AclSnapshot::build(&state)) ─▶ every shard
//!              3. disconnect outcome.kicks (reason 0x98, no will)
//!              4. log outcome.audit
//!  shard:  snapshot.authenticate_cached(&mut cache, user, pw, client_id) at CONNECT
//!          snapshot.check(AclEvent::…, &identity, topic) per publish/delivery/(un)subscribe
//! ```
//!
//! API for the broker wiring:
//!
//! | step | call |
//! | --- | --- |
//! | start-up | [`bootstrap::bootstrap_if_missing`], then [`store::load_file`] (warnings → log; an error should stop start-up rather than run with an empty state) |
//! | control PUBLISH | [`control::handle_request`] → [`ControlOutcome`] `{ response, changed, audit, kicks }` |
//! | persist | [`store::serialise`] + [`atomic_file::save_atomic`] (generic crash-safe whole-file write, 0600) |
//! | publish the rules | `Arc::new(`[`AclSnapshot::build`]`(&state))` to every shard (`Send + Sync`, immutable) |
//! | CONNECT | [`AclSnapshot::authenticate_cached`] with the shard's [`crate::credential_cache::CredentialCache`] → [`AuthResult`] |
//! | PUBLISH / delivery / SUBSCRIBE / UNSUBSCRIBE | [`AclSnapshot::check`] (or `subject` once per connection + `decide_subject`) with an [`AclEvent`] and a [`ClientIdentity`] |
//! | HA auth-sync | replicate `store::serialise(&state)` bytes; followers `store::load` them (hashes carry random salts, so replaying requests would diverge) |
//!
//! Where Culex deliberately differs from Mosquitto 2.0.11 is listed in one table,
//! [`deviations::DEVIATIONS`]; the golden tests consult it and nothing else. Test fixtures
//! are a copy of `shared/spec/dynsec-golden/` in `testdata/golden/`.

pub mod acl;

pub mod bootstrap;
pub mod control;
pub mod deviations;
pub mod json;
pub mod json_out;
pub mod limits;
pub mod model;
pub mod password;
pub mod service;
pub mod store;
mod topic;
pub mod validate;

pub use acl::{AclDecision, AclEvent, AclSnapshot, AclSubject, AuthResult, ClientIdentity};
pub use control::{handle_request, ControlOutcome, Kick, Kicks, RequestContext};
pub use model::DynsecState;

#[cfg(test)]
mod tests;
