//! A shard's cache of credentials verified recently, so that a client that reconnects does
//! not pay a PBKDF2 run (~0.5 ms at 1000 iterations, ~50 µs at 2.0's 101) every time.
//!
//! Used by dynamic security (`AclSnapshot::authenticate_cached`) and password files
//! (`PasswordFile::check_cached`), one cache per shard for both. The key
//! is the username; the value is a keyed digest `SHA-512(secret ‖ len ‖ username ‖
//! password)` truncated to 32 bytes, with `secret` random per cache (the cache never holds
//! anything cheaper to crack than the stored hash), plus the stored hash that was verified.
//! A hit needs both to match, so a password change or a reload with a new hash makes the
//! entry useless without any message. Only successful verifications are inserted, so
//! failed guesses cannot grow it; it is cleared when full.

use rustc_hash::FxHashMap;
use sha2::{Digest as _, Sha512};

use crate::dynsec::password::{fill_random, PasswordHash, RandomError};

pub use crate::limits::CREDENTIAL_CACHE_ENTRIES_MAX;

/// Verified credentials of one shard. Owned `&mut` by the shard; survives reloads of the
/// password file.
pub struct CredentialCache {
    secret: [u8; 32],
    entries: FxHashMap<Box<[u8]>, Entry>,
    hits: u64,
}

struct Entry {
    digest: [u8; 32],
    hash: Box<[u8]>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.entries.len())
            .field("hits", &self.hits)
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// An empty cache with a fresh random secret.
    pub fn new() -> Result<CredentialCache, RandomError> {
        let mut secret = [0u8; 32];
        fill_random(&mut secret)?;
        Ok(CredentialCache {
            secret,
            entries: FxHashMap::default(),
            hits: 0,
        })
    }

    /// Number of cached credentials.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Verifications answered from the cache since it was created.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    fn digest(&self, username: &[u8], password: &[u8]) -> [u8; 32] {
        let mut hasher = Sha512::new();
        hasher.update(self.secret);
        hasher.update((username.len() as u64).to_be_bytes());
        hasher.update(username);
        hasher.update(password);
        let full = hasher.finalize();
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&full[..32]);
        digest
    }

    /// Whether `password` matches `hash`, answered from the cache when this exact pair was
    /// verified before against this exact stored hash.
    pub(crate) fn verify(&mut self, username: &[u8], password: &[u8], hash: &PasswordHash) -> bool {
        let digest = self.digest(username, password);
        if let Some(entry) = self.entries.get(username) {
            let same_digest = entry
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same_digest && *entry.hash == *hash.fingerprint() {
                self.hits += 1;
                return true;
            }
        }
        if !hash.verify(password) {
            return false;
        }
        if self.entries.len() >= CREDENTIAL_CACHE_ENTRIES_MAX {
            self.entries.clear();
        }
        self.entries.insert(
            username.into(),
            Entry {
                digest,
                hash: hash.fingerprint().into(),
            },
        );
        true
    }
}
