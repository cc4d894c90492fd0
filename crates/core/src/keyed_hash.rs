//! The VM's caches (verified tokens, known subscription keys) are keyed by SipHash-2-4 with a
//! 128-bit output under a 128-bit random key drawn per VM: a keyed PRF, so no one who lacks
//! the key can make another input land on a cached entry, at a twentieth of SHA-256's price
//! inside V8.

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;

/// A 128-bit hash key from the system's randomness (WASI `random_get` in Envoy). `None` when
/// no randomness is available: then nothing may be cached.
pub fn random_hash_key() -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).ok()?;
    Some(key)
}

/// SipHash-2-4-128 of `bytes` under `key`.
pub(crate) fn keyed_hash(key: &[u8; 16], bytes: &[u8]) -> u128 {
    let mut hasher = SipHasher24::new_with_key(key);
    hasher.write(bytes);
    hasher.finish128().as_u128()
}
