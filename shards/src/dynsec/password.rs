//! Client password hashes (spec §12): PBKDF2-HMAC-SHA512 with a 64-byte derived key,
//! stored either as Mosquitto 2.0's `password`/`salt`/`iterations` triple or as 2.1's
//! `encoded_password` = `$7$<iterations>$<base64 salt>$<base64 hash>`; 2.1's `$6$` form
//! (one SHA-512 over password‖salt) is read too.
//!
//! Called by `control` (hashing new passwords), `store` (decoding and encoding the file)
//! and `acl` (verifying CONNECT passwords). Hashing is slow on purpose: ~45 µs at 101
//! iterations and ~450 µs at 1000 on this machine (deps.md §8), which is why `acl` keeps a
//! verified-credentials cache.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest as _, Sha512};

/// Length of every stored hash (PBKDF2 output and SHA-512 digest).
pub const HASH_BYTES: usize = 64;

/// Which file representation a hash uses. Kept per hash so that a file written by 2.0 is
/// written back in the same form for the clients whose password did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredForm {
    /// `password` + `salt` + `iterations` keys (Mosquitto 2.0, readable by every version).
    Triple,
    /// One `encoded_password` key (Mosquitto 2.1; ignored by 2.0).
    Encoded,
}

impl StoredForm {
    /// The Mosquitto version whose format this is, as `plugin_opt_password_format` and the
    /// start-up log line spell it.
    pub fn version(self) -> &'static str {
        match self {
            StoredForm::Triple => "2.0",
            StoredForm::Encoded => "2.1",
        }
    }

    /// The keys this form writes, for the start-up log line.
    pub fn keys(self) -> &'static str {
        match self {
            StoredForm::Triple => "password/salt/iterations",
            StoredForm::Encoded => "encoded_password",
        }
    }

    /// Parses a [`StoredForm::version`] spelling.
    pub fn from_version(text: &str) -> Option<StoredForm> {
        [StoredForm::Triple, StoredForm::Encoded]
            .into_iter()
            .find(|form| form.version() == text)
    }
}

/// How new passwords are hashed and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// PBKDF2 iterations for new hashes (at least 1).
    pub iterations: u32,
    /// Random salt length for new hashes: 12 (2.0) or 64 (2.1).
    pub salt_bytes: usize,
    /// File representation for new hashes.
    pub form: StoredForm,
}

impl PasswordPolicy {
    /// Mosquitto 2.1's choice: `$7$`, 1000 iterations, 64-byte salt. Mosquitto 2.0 cannot
    /// read these hashes (it loads such a client without a password).
    pub const MOSQUITTO_2_1: PasswordPolicy = PasswordPolicy {
        iterations: 1000,
        salt_bytes: 64,
        form: StoredForm::Encoded,
    };
    /// Mosquitto 2.0's choice, and Culex's default: a triple with 101 iterations and a
    /// 12-byte salt, which every Mosquitto version reads, so a file can go back to 2.0.
    pub const MOSQUITTO_2_0: PasswordPolicy = PasswordPolicy {
        iterations: 101,
        salt_bytes: 12,
        form: StoredForm::Triple,
    };

    /// The Mosquitto policy that writes `form`.
    pub fn for_form(form: StoredForm) -> PasswordPolicy {
        match form {
            StoredForm::Triple => PasswordPolicy::MOSQUITTO_2_0,
            StoredForm::Encoded => PasswordPolicy::MOSQUITTO_2_1,
        }
    }
}

impl Default for PasswordPolicy {
    /// Mosquitto 2.0's: the form every Mosquitto version can read.
    fn default() -> Self {
        PasswordPolicy::MOSQUITTO_2_0
    }
}

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        /// Iteration count, at least 1.
        iterations: u32,
        /// Salt bytes (12 or 64 when read from a file).
        salt: Vec<u8>,
        /// Derived key.
        hash: [u8; HASH_BYTES],
        /// How it is written to the file.
        form: StoredForm,
    },
    /// `$6$`: SHA-512 over password‖salt (Mosquitto password-file format, read by 2.1).
    Sha512 {
        /// Salt bytes.
        salt: Vec<u8>,
        /// Digest.
        hash: [u8; HASH_BYTES],
    },
    /// An `encoded_password` this build cannot verify (e.g. `$argon2id$…`). It never
    /// matches a password and is written back to the file unchanged.
    Opaque(Vec<u8>),
}

impl std::fmt::Debug for PasswordHash {
    /// Never prints hash material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordHash::Pbkdf2 {
                iterations, form, ..
            } => write!(f, "Pbkdf2 {{ iterations: {iterations}, form: {form:?} }}"),
            PasswordHash::Sha512 { .. } => write!(f, "Sha512"),
            PasswordHash::Opaque(_) => write!(f, "Opaque"),
        }
    }
}

/// The operating system's random source failed; the command answers "Internal error".
#[derive(Debug)]
pub struct RandomError(pub getrandom::Error);

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(RandomError)
}

fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_BYTES] {
    let mut out = [0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

/// Constant-time equality of two hashes.
fn same_hash(a: &[u8; HASH_BYTES], b: &[u8; HASH_BYTES]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn decode_hash(b64: &[u8]) -> Option<[u8; HASH_BYTES]> {
    let bytes = BASE64.decode(b64).ok()?;
    bytes.try_into().ok()
}

fn decode_salt(b64: &[u8]) -> Option<Vec<u8>> {
    let salt = BASE64.decode(b64).ok()?;
    matches!(salt.len(), 12 | 64).then_some(salt)
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt according to `policy`.
    pub fn new(password: &[u8], policy: &PasswordPolicy) -> Result<PasswordHash, RandomError> {
        assert!(
            policy.iterations >= 1,
            "PBKDF2 needs at least one iteration"
        );
        assert!(policy.salt_bytes > 0, "a salt is required");
        let mut salt = vec![0u8; policy.salt_bytes];
        fill_random(&mut salt)?;
        let hash = pbkdf2(password, &salt, policy.iterations);
        Ok(PasswordHash::Pbkdf2 {
            iterations: policy.iterations,
            salt,
            hash,
            form: policy.form,
        })
    }

    /// Whether `password` matches. Slow (a full PBKDF2 run); constant-time comparison.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Pbkdf2 {
                iterations,
                salt,
                hash,
                ..
            } => same_hash(&pbkdf2(password, salt, *iterations), hash),
            PasswordHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                let computed: [u8; HASH_BYTES] = digest.finalize().into();
                same_hash(&computed, hash)
            }
            PasswordHash::Opaque(_) => false,
        }
    }

    /// The stored hash bytes, used to notice that a cached verification is stale.
    pub fn fingerprint(&self) -> &[u8] {
        match self {
            PasswordHash::Pbkdf2 { hash, .. } | PasswordHash::Sha512 { hash, .. } => hash,
            PasswordHash::Opaque(raw) => raw,
        }
    }

    /// Reads Mosquitto 2.0's `password`/`salt`/`iterations` keys. `None` when they do not
    /// describe a usable hash (iterations < 1, salt not 12 or 64 bytes, hash not 64 bytes).
    pub fn from_triple(password_b64: &[u8], salt_b64: &[u8], iterations: i64) -> Option<Self> {
        let iterations = u32::try_from(iterations).ok().filter(|&i| i >= 1)?;
        Some(PasswordHash::Pbkdf2 {
            iterations,
            salt: decode_salt(salt_b64)?,
            hash: decode_hash(password_b64)?,
            form: StoredForm::Triple,
        })
    }

    /// Reads 2.1's `encoded_password`. Strings that are not a well-formed `$7$` or `$6$`
    /// hash are kept as [`PasswordHash::Opaque`].
    pub fn from_encoded(encoded: &[u8]) -> PasswordHash {
        Self::decode_known(encoded).unwrap_or_else(|| PasswordHash::Opaque(encoded.to_vec()))
    }

    fn decode_known(encoded: &[u8]) -> Option<PasswordHash> {
        let parts: Vec<&[u8]> = encoded.split(|&b| b == b'$').collect();
        match parts.as_slice() {
            [b"", b"7", iterations, salt, hash] => {
                let text = std::str::from_utf8(iterations).ok()?;
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let iterations = text.parse::<i32>().ok()?;
                let mut decoded = Self::from_triple(hash, salt, i64::from(iterations))?;
                if let PasswordHash::Pbkdf2 { form, .. } = &mut decoded {
                    *form = StoredForm::Encoded;
                }
                Some(decoded)
            }
            [b"", b"6", salt, hash] => {
                let salt = BASE64.decode(salt).ok().filter(|s| !s.is_empty())?;
                Some(PasswordHash::Sha512 {
                    salt,
                    hash: decode_hash(hash)?,
                })
            }
            _ => None,
        }
    }

    /// Whether Mosquitto 2.0 can log the client in with this hash once the file is back
    /// there: only a triple with a 12-byte salt (2.0 ignores `encoded_password` and drops a
    /// client whose salt has another length, spec §11.4).
    pub fn readable_by_2_0(&self) -> bool {
        matches!(
            self,
            PasswordHash::Pbkdf2 { form: StoredForm::Triple, salt, .. } if salt.len() == 12
        )
    }

    /// The `password`, `salt`, `iterations` values when this hash is stored as a triple.
    pub fn triple(&self) -> Option<(Vec<u8>, Vec<u8>, u32)> {
        match self {
            PasswordHash::Pbkdf2 {
                iterations,
                salt,
                hash,
                form: StoredForm::Triple,
            } => Some((
                BASE64.encode(hash).into_bytes(),
                BASE64.encode(salt).into_bytes(),
                *iterations,
            )),
            _ => None,
        }
    }

    /// The `encoded_password` value when this hash is not stored as a triple.
    pub fn encoded(&self) -> Option<Vec<u8>> {
        match self {
            PasswordHash::Pbkdf2 {
                iterations,
                salt,
                hash,
                form: StoredForm::Encoded,
            } => Some(
                format!(
                    "$7${iterations}${}${}",
                    BASE64.encode(salt),
                    BASE64.encode(hash)
                )
                .into_bytes(),
            ),
            PasswordHash::Pbkdf2 { .. } => None,
            PasswordHash::Sha512 { salt, hash } => {
                Some(format!("$6${}${}", BASE64.encode(salt), BASE64.encode(hash)).into_bytes())
            }
            PasswordHash::Opaque(raw) => Some(raw.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE_ENCODED: &str = "$7$101$w7BqHiV+WZe+/+qn$DZATR3F3coRxh/GC6AkNi0XMPfq56VlSv9sPQo+THrzBFqTavVuRfCX6eKrIG4MRJcsn5X2dvlwsLqiKjW+mZQ==";

    #[test]
    fn encoded_form_round_trips_and_verifies() {
        let hash = PasswordHash::from_encoded(SIMPLE_ENCODED.as_bytes());
        assert!(matches!(
            hash,
            PasswordHash::Pbkdf2 {
                iterations: 101,
                ..
            }
        ));
        assert!(hash.verify(b"secret"));
        assert!(!hash.verify(b"Secret"));
        assert_eq!(hash.encoded().unwrap(), SIMPLE_ENCODED.as_bytes());
        assert!(hash.triple().is_none());
    }

    #[test]
    fn new_hashes_follow_the_policy_and_verify() {
        let policy = PasswordPolicy {
            iterations: 3,
            salt_bytes: 64,
            form: StoredForm::Encoded,
        };
        let hash = PasswordHash::new(b"pw", &policy).unwrap();
        assert!(hash.verify(b"pw"));
        let encoded = hash.encoded().unwrap();
        assert!(encoded.starts_with(b"$7$3$"));
        assert_eq!(PasswordHash::from_encoded(&encoded), hash);
        let other = PasswordHash::new(b"pw", &policy).unwrap();
        assert_ne!(
            hash.fingerprint(),
            other.fingerprint(),
            "fresh salt per hash"
        );
    }

    #[test]
    fn legacy_policy_writes_triples() {
        let policy = PasswordPolicy {
            iterations: 2,
            ..PasswordPolicy::MOSQUITTO_2_0
        };
        let hash = PasswordHash::new(b"pw", &policy).unwrap();
        let (password, salt, iterations) = hash.triple().unwrap();
        assert_eq!(iterations, 2);
        assert_eq!(salt.len(), 16);
        assert_eq!(password.len(), 88);
        let back = PasswordHash::from_triple(&password, &salt, 2).unwrap();
        assert!(back.verify(b"pw"));
    }

    #[test]
    fn malformed_hashes_are_rejected_or_opaque() {
        let salt12 = b"AQIDBAUGBwgJCgsM";
        let hash = b"t6D88j5Z32uaM4ZUwTbWFgj0rQXcgT+iDutZRwp6aXGDGYTAOwDpDfYPxl4w1uRmdQLju60ARz7jDruBgBgT+w==";
        assert!(PasswordHash::from_triple(hash, salt12, 0).is_none());
        assert!(PasswordHash::from_triple(hash, b"AQIDBAUGBwgJCgsMDQ4PEA==", 101).is_none());
        assert!(PasswordHash::from_triple(b"AAAA", salt12, 101).is_none());
        assert!(PasswordHash::from_triple(hash, salt12, 1000).is_some());
        for raw in [
            "$argon2id$v=19$m=65536,t=3,p=4$abc$def",
            "$7$x$a$b",
            "",
            "$7$-1$a$b",
        ] {
            let decoded = PasswordHash::from_encoded(raw.as_bytes());
            assert_eq!(decoded, PasswordHash::Opaque(raw.as_bytes().to_vec()));
            assert!(!decoded.verify(b""));
            assert_eq!(decoded.encoded().unwrap(), raw.as_bytes());
        }
    }

    #[test]
    fn sha512_form_verifies() {
        let salt = b"0123456789ab";
        let mut digest = Sha512::new();
        digest.update(b"pw");
        digest.update(salt);
        let hash: [u8; 64] = digest.finalize().into();
        let encoded = format!("$6${}${}", BASE64.encode(salt), BASE64.encode(hash));
        let decoded = PasswordHash::from_encoded(encoded.as_bytes());
        assert!(matches!(decoded, PasswordHash::Sha512 { .. }));
        assert!(decoded.verify(b"pw"));
        assert!(!decoded.verify(b"px"));
        assert_eq!(decoded.encoded().unwrap(), encoded.as_bytes());
    }
}
