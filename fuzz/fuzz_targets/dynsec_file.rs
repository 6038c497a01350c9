//! The dynamic-security plugin's JSON file (`dynamic-security.json`), as the broker loads
//! it at start-up: no panic on any input; a state that loads keeps its invariants, and the
//! file the broker would save from it loads back to the same state (save → load → save
//! gives the same bytes).
//!
//! Input: the file's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shards::dynsec::store;

fuzz_target!(|data: &[u8]| {
    let Ok((state, _warnings)) = store::load(data) else {
        return;
    };
    if let Err(broken) = state.check_invariants() {
        panic!("a loaded state breaks an invariant: {broken}");
    }
    let saved = store::serialise(&state);
    let again = match store::load(&saved) {
        Ok((again, _)) => again,
        Err(error) => panic!("the saved file does not load: {error:?}"),
    };
    assert_eq!(
        store::serialise(&again),
        saved,
        "save → load → save changed the file"
    );
});
