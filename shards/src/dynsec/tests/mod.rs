//! Cross-module tests of dynamic security: the golden replay against Mosquitto 2.0.11
//! captures, password vectors, the ACL property test, bad-input handling and file
//! round trips. Fixtures are a copy of `shared/spec/dynsec-golden/` in `../testdata/golden`.

mod acl_property;
mod bad_input;
mod behaviour;
mod fixtures;
mod golden;
mod password_format;
mod support;
