//! Dynamic-security control requests (the `$CONTROL/dynamic-security/v1` topic), run on the
//! state of the golden capture's initial file: no panic on any request, the state keeps its
//! invariants after each, every response is valid JSON, and a changed state saves to a file
//! that loads back.
//!
//! Input: request payloads separated by NUL bytes, run in order on one state (a JSON text
//! cannot contain a raw NUL).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shards::dynsec::control::{handle_request, RequestContext};
use shards::dynsec::model::DynsecState;
use shards::dynsec::{json, store};

const INITIAL: &[u8] =
    include_bytes!("../../shards/src/dynsec/testdata/golden/initial-dynamic-security.json");

const ADMIN: RequestContext<'static> = RequestContext {
    client_id: b"admin-cli",
    username: Some(b"admin"),
};

fn initial() -> &'static DynsecState {
    static STATE: OnceLock<DynsecState> = OnceLock::new();
    STATE.get_or_init(|| match store::load(INITIAL) {
        Ok((state, _)) => state,
        Err(error) => panic!("the golden initial file does not load: {error:?}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut state = initial().clone();
    for payload in data.split(|&b| b == 0).take(16) {
        let outcome = handle_request(&mut state, payload, &ADMIN);
        if let Err(broken) = state.check_invariants() {
            panic!("a request broke an invariant: {broken}");
        }
        if let Some(response) = &outcome.response {
            if let Err(error) = json::parse(response) {
                panic!(
                    "a response is not JSON ({error}): {}",
                    String::from_utf8_lossy(response)
                );
            }
        }
        if outcome.changed {
            if let Err(error) = store::load(&store::serialise(&state)) {
                panic!("the saved file does not load: {error:?}");
            }
        }
    }
});
