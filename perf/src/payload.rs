//! The payload every harness message carries: who sent it, its sequence number and when.
//!
//! Owns the 16-byte header at the front of each payload (publisher id, sequence number,
//! send time in nanoseconds since the run's shared epoch) and the filler after it.
//! Publishers call [`write`] when they encode a PUBLISH; subscribers call [`read`] on what
//! they receive, to count per-publisher deliveries and to measure publish-to-receive
//! latency. Pure: no I/O, no clock.
//!
//! ```text
//!   0        4        8                16                 size
//!   │ pub id │  seq   │ sent at (ns)   │ filler 0x5A ...  │
//! ```

/// Bytes of the header; also the smallest payload the harness sends.
pub const HEADER_LEN: usize = 16;

/// The decoded header of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Index of the publisher (0-based, dense over the run's publishers).
    pub publisher: u32,
    /// Sequence number of the message within its publisher, from 0.
    pub seq: u32,
    /// Send time, nanoseconds since the run's epoch.
    pub sent_ns: u64,
}

/// Fills `out` (at least [`HEADER_LEN`] bytes) with `header` and the filler.
pub fn write(out: &mut [u8], header: Header) {
    assert!(out.len() >= HEADER_LEN, "payload shorter than its header");
    out[0..4].copy_from_slice(&header.publisher.to_le_bytes());
    out[4..8].copy_from_slice(&header.seq.to_le_bytes());
    out[8..16].copy_from_slice(&header.sent_ns.to_le_bytes());
}

/// A payload template of `size` bytes: zero header, then filler.
pub fn template(size: usize) -> Vec<u8> {
    let size = size.max(HEADER_LEN);
    let mut payload = vec![0x5A; size];
    payload[..HEADER_LEN].fill(0);
    payload
}

/// Reads the header of a received payload; `None` when it is too short to be ours.
pub fn read(payload: &[u8]) -> Option<Header> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ])
    };
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&payload[8..16]);
    Some(Header {
        publisher: u32_at(0),
        seq: u32_at(4),
        sent_ns: u64::from_le_bytes(sent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_filler_is_kept() {
        let mut payload = template(64);
        let header = Header {
            publisher: 7,
            seq: 123_456,
            sent_ns: 9_876_543_210,
        };
        write(&mut payload, header);
        assert_eq!(read(&payload), Some(header));
        assert_eq!(payload.len(), 64);
        assert!(payload[HEADER_LEN..].iter().all(|&b| b == 0x5A));
    }

    #[test]
    fn short_payloads_are_not_ours() {
        assert_eq!(read(&[0; HEADER_LEN - 1]), None);
        assert_eq!(template(1).len(), HEADER_LEN);
    }
}
