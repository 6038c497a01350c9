//! The persistence file (`persistence_location`'s state file), as the broker reads it at
//! start-up: decode (current layout and version 1), split over the shards, and apply every
//! record to scratch session stores. No panic on any input; a current-layout file that
//! decodes re-encodes to a file that decodes to the same snapshot.
//!
//! Input: byte 0 picks the form; 0: the rest is the whole file (header included); 1 and 2:
//! the rest is the body of a layout version 1 or 2 file, given a valid header (magic,
//! length, checksum) so that the records are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shards::persist;
use shards::state::frame;
use shards::state::snapshot::{self, FILE_MAGIC};

fuzz_target!(|data: &[u8]| {
    let [form, rest @ ..] = data else {
        return;
    };
    let file = match form % 3 {
        0 => rest.to_vec(),
        version => frame::seal(&FILE_MAGIC, u32::from(version), rest),
    };
    let Ok(decoded) = persist::decode(&file) else {
        return;
    };
    if snapshot::decode(&file).is_ok() {
        let again = snapshot::decode(&snapshot::encode(&decoded));
        assert_eq!(
            again.as_ref(),
            Ok(&decoded),
            "encode → decode changed the snapshot"
        );
    }
    for shards in [1, 3] {
        let _ = persist::verify(&persist::split(decoded.clone(), shards));
    }
});
