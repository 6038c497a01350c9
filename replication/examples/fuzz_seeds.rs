//! Writes the seed inputs of the fuzz targets whose inputs are binary formats made by Culex's
//! own encoders (see `fuzz/README.md`): cluster link frames, Raft log segments and the
//! current layout of the persistence file. Each seed is in the form its target reads (a
//! selector byte first).
//!
//! ```text
//! cargo run -p replication --example fuzz_seeds -- fuzz/corpus
//! ```

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use replication::log::{Wal, WalEntry, WalOptions};
use replication::wire::{
    self, Forwarded, Msg, WAppendRequest, WAppendResponse, WEntry, WLogId, WMembership, WPayload,
    WSnapshotMeta, WVote, WVoteRequest, WVoteResponse,
};

/// The version-1 state file of the persistence tests.
const VERSION_1_FILE: &[u8] =
    include_bytes!("../../shards/src/persist/fixtures/culex-0.1-state.db");

fn main() -> io::Result<()> {
    let Some(out) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR");
        std::process::exit(2);
    };
    let mut count = 0;
    for msg in messages() {
        let frame = wire::encode(&msg);
        count += put(&out.join("cluster_frame"), &[&[0], &frame[..]].concat())?;
        count += put(&out.join("cluster_frame"), &[&[1], &frame[32..]].concat())?;
    }
    for segment in segments()? {
        count += put(&out.join("raft_log"), &[&[0], &segment[..]].concat())?;
    }
    match shards::persist::decode(VERSION_1_FILE) {
        Ok(snapshot) => {
            let file = shards::state::snapshot::encode(&snapshot);
            count += put(&out.join("persist_file"), &[&[0], &file[..]].concat())?;
            count += put(&out.join("persist_file"), &[&[2], &file[32..]].concat())?;
        }
        Err(error) => {
            return Err(io::Error::other(format!(
                "the fixture does not load: {error}"
            )))
        }
    }
    eprintln!("{count} seeds written under {}", out.display());
    Ok(())
}

/// Writes `seed` into `dir` under a name made of its content.
fn put(dir: &Path, seed: &[u8]) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{:08x}-{}", crc32fast::hash(seed), seed.len());
    std::fs::write(dir.join(name), seed)?;
    Ok(1)
}

fn vote(term: u64, node: u64, committed: bool) -> WVote {
    WVote {
        term,
        node,
        committed,
    }
}

fn id(term: u64, index: u64) -> WLogId {
    WLogId { term, index }
}

fn membership() -> WMembership {
    WMembership {
        configs: vec![vec![1, 2, 3]],
        nodes: vec![
            (1, "127.0.0.1:7001".to_string()),
            (2, "127.0.0.2:7001".to_string()),
            (3, "127.0.0.3:7001".to_string()),
        ],
    }
}

fn entries() -> Vec<WEntry> {
    vec![
        WEntry {
            log_id: id(1, 0),
            payload: WPayload::Blank,
        },
        WEntry {
            log_id: id(1, 1),
            payload: WPayload::Membership(membership()),
        },
        WEntry {
            log_id: id(2, 2),
            payload: WPayload::Normal(Bytes::from_static(b"session record bytes")),
        },
    ]
}

/// One message of every kind the link carries.
fn messages() -> Vec<Msg> {
    vec![
        Msg::Hello {
            cluster: "culex".to_string(),
            from: 2,
            nonce: vec![7; 16],
        },
        Msg::Append(WAppendRequest {
            vote: vote(2, 1, true),
            prev_log_id: None,
            entries: entries(),
            leader_commit: Some(id(1, 1)),
        }),
        Msg::AppendReply(WAppendResponse::PartialSuccess(Some(id(2, 3)))),
        Msg::AppendReply(WAppendResponse::HigherVote(vote(3, 2, false))),
        Msg::Vote(WVoteRequest {
            vote: vote(3, 2, false),
            last_log_id: Some(id(2, 3)),
            leadership_transfer: true,
        }),
        Msg::VoteReply(WVoteResponse {
            vote: vote(3, 2, false),
            granted: true,
            last_log_id: None,
        }),
        Msg::Snapshot {
            vote: vote(2, 1, true),
            meta: WSnapshotMeta {
                last_log_id: Some(id(2, 3)),
                membership_log_id: Some(id(1, 2)),
                membership: membership(),
            },
            data: b"snapshot body".to_vec(),
        },
        Msg::SnapshotReply {
            vote: vote(2, 1, true),
        },
        Msg::TransferLeader {
            from_leader: vote(2, 1, true),
            to: 3,
            last_log_id: Some(id(2, 3)),
        },
        Msg::TransferLeaderReply {
            refused: Some("not caught up".to_string()),
        },
        Msg::Forward(Forwarded {
            topic: "$CONTROL/dynamic-security/v1".to_string(),
            payload: br#"{"commands":[{"command":"listClients"}]}"#.to_vec(),
            client_id: "admin-cli".to_string(),
            username: Some("admin".to_string()),
            origin: 2,
            shard: 1,
        }),
        Msg::ForwardReply {
            response: Some(b"{}".to_vec()),
        },
        Msg::Refused {
            reason: "wrong cluster".to_string(),
        },
        Msg::Challenge {
            nonce: vec![1; 16],
            proof: vec![2; 32],
        },
        Msg::Proof { proof: vec![3; 32] },
        Msg::Welcome,
    ]
}

/// Segment files written by the log itself: the entries above, appended in one call and
/// in one call each; trailing zeros cut (recovery reads a short file the same way).
fn segments() -> io::Result<Vec<Vec<u8>>> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let mut out = Vec::new();
    for batched in [true, false] {
        let dir = base.join(format!("culex-fuzz-seeds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut wal = Wal::open(&dir, WalOptions::default())?;
        let stored: Vec<WalEntry> = entries()
            .iter()
            .map(|entry| WalEntry {
                term: entry.log_id.term,
                index: entry.log_id.index,
                payload: Bytes::from(wire::archive(entry, 256)),
            })
            .collect();
        if batched {
            wal.append(&stored)?;
        } else {
            for entry in &stored {
                wal.append(std::slice::from_ref(entry))?;
            }
        }
        drop(wal);
        for file in std::fs::read_dir(&dir)? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "wal") {
                let mut bytes = std::fs::read(&path)?;
                let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
                bytes.truncate(end);
                out.push(bytes);
            }
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(out)
}
