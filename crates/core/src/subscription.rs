//! Subscription keys: how a key is hashed, how a configured hash is read, and the lookup from a
//! presented key to its consumer. Only hashes are ever stored; a key is hashed the moment it is
//! read and never kept.

use crate::keyed_hash::keyed_hash;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

pub const HASH_PREFIX: &str = "sha256:";

/// Why a configured key hash cannot be read. `Display` is the operator-facing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyHashError {
    /// The text does not start with `sha256:`.
    MissingPrefix,
    /// Not 64 bytes after `sha256:`.
    WrongLength {
        /// How many bytes follow the prefix.
        got: usize,
    },
    /// Something other than `0-9`, `a-f` after `sha256:`.
    NotLowercaseHex,
}

impl fmt::Display for KeyHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("must be 'sha256:' followed by 64 lowercase hex digits")?;
        match self {
            Self::MissingPrefix => Ok(()),
            Self::WrongLength { got } => write!(f, " (got {got} characters after 'sha256:')"),
            Self::NotLowercaseHex => f.write_str(" (0-9, a-f)"),
        }
    }
}

impl std::error::Error for KeyHashError {}

/// SHA-256 of a key's exact bytes, as they arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(key: &[u8]) -> Self {
        Self(Sha256::digest(key).into())
    }

    /// Reads `sha256:` followed by 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, KeyHashError> {
        let hex = text
            .strip_prefix(HASH_PREFIX)
            .ok_or(KeyHashError::MissingPrefix)?;
        if hex.len() != 64 {
            return Err(KeyHashError::WrongLength { got: hex.len() });
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            match (lower_hex_digit(pair.first()), lower_hex_digit(pair.get(1))) {
                (Some(high), Some(low)) => *byte = (high << 4) | low,
                _ => return Err(KeyHashError::NotLowercaseHex),
            }
        }
        Ok(Self(bytes))
    }

    /// The configuration form, `sha256:<64 hex>`.
    pub fn to_config_string(self) -> String {
        let mut text = String::with_capacity(HASH_PREFIX.len() + 64);
        text.push_str(HASH_PREFIX);
        for byte in self.0 {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }
}

fn lower_hex_digit(digit: Option<&u8>) -> Option<u8> {
    match digit? {
        digit @ b'0'..=b'9' => Some(digit - b'0'),
        digit @ b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Index of a consumer in the plan.
pub type ConsumerId = usize;

/// From key hash to consumer; several hashes may name one consumer (primary and secondary key).
#[derive(Debug, Default)]
pub struct KeyTable {
    by_hash: HashMap<KeyHash, ConsumerId>,
}

impl KeyTable {
    /// Adds a hash; returns the consumer that already holds it, if any.
    pub fn insert(&mut self, hash: KeyHash, consumer: ConsumerId) -> Option<ConsumerId> {
        match self.by_hash.get(&hash) {
            Some(&holder) => Some(holder),
            None => {
                self.by_hash.insert(hash, consumer);
                None
            }
        }
    }

    pub fn consumer_for(&self, key: &[u8]) -> Option<ConsumerId> {
        self.by_hash.get(&KeyHash::of(key)).copied()
    }
}

/// Subscription keys this VM already found valid, by a keyed hash of the key
/// (`keyed_hash.rs`): a hit skips the key's SHA-256, the largest cost of the key path in wasm.
/// Only valid keys enter, so it never holds more than the plan's keys.
#[derive(Debug)]
pub struct KnownKeys {
    hash_key: [u8; 16],
    pub(crate) consumers: HashMap<u128, ConsumerId>,
}

impl KnownKeys {
    pub fn new(hash_key: [u8; 16]) -> Self {
        Self {
            hash_key,
            consumers: HashMap::new(),
        }
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u128 {
        keyed_hash(&self.hash_key, key)
    }

    /// The consumer holding `key`: remembered, else looked up in `table` (and remembered).
    pub fn consumer_for(&mut self, table: &KeyTable, key: &[u8]) -> Option<ConsumerId> {
        let hash = self.hash(key);
        if let Some(&id) = self.consumers.get(&hash) {
            return Some(id);
        }
        let id = table.consumer_for(key)?;
        self.consumers.insert(hash, id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_through_config_form() {
        let hash = KeyHash::of(b"primary-key");
        let text = hash.to_config_string();
        assert!(text.starts_with("sha256:"));
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(KeyHash::parse(&text), Ok(hash));
    }

    #[test]
    fn known_sha256_vector() {
        assert_eq!(
            KeyHash::of(b"abc").to_config_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_refuses_malformed_hashes() {
        let upper = format!("sha256:{}", "A".repeat(64));
        let short = format!("sha256:{}", "a".repeat(63));
        let no_prefix = "a".repeat(64);
        let not_hex = format!("sha256:{}", "g".repeat(64));
        let multibyte = format!("sha256:{}é", "a".repeat(62));
        for bad in [upper, short, no_prefix, not_hex, multibyte, String::new()] {
            assert!(KeyHash::parse(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parse_errors_say_the_same_as_ever() {
        let no_prefix = "a".repeat(64);
        let short = format!("sha256:{}", "a".repeat(63));
        let upper = format!("sha256:{}", "A".repeat(64));
        for (bad, error, text) in [
            (
                no_prefix.as_str(),
                KeyHashError::MissingPrefix,
                "must be 'sha256:' followed by 64 lowercase hex digits",
            ),
            (
                short.as_str(),
                KeyHashError::WrongLength { got: 63 },
                "must be 'sha256:' followed by 64 lowercase hex digits (got 63 characters after 'sha256:')",
            ),
            (
                upper.as_str(),
                KeyHashError::NotLowercaseHex,
                "must be 'sha256:' followed by 64 lowercase hex digits (0-9, a-f)",
            ),
        ] {
            assert_eq!(KeyHash::parse(bad), Err(error), "{bad:?}");
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn table_finds_every_key_of_a_consumer_and_nothing_else() {
        let mut table = KeyTable::default();
        assert_eq!(table.insert(KeyHash::of(b"primary"), 0), None);
        assert_eq!(table.insert(KeyHash::of(b"secondary"), 0), None);
        assert_eq!(table.insert(KeyHash::of(b"other"), 1), None);
        assert_eq!(table.consumer_for(b"primary"), Some(0));
        assert_eq!(table.consumer_for(b"secondary"), Some(0));
        assert_eq!(table.consumer_for(b"other"), Some(1));
        assert_eq!(table.consumer_for(b"unknown"), None);
        assert_eq!(table.consumer_for(b""), None);
    }

    #[test]
    fn table_reports_a_duplicate_hash() {
        let mut table = KeyTable::default();
        table.insert(KeyHash::of(b"shared"), 0);
        assert_eq!(table.insert(KeyHash::of(b"shared"), 3), Some(0));
        assert_eq!(table.consumer_for(b"shared"), Some(0));
    }
}
