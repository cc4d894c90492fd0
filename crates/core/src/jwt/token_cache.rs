//! Verified tokens, per VM. Verifying RS256 inside wasm costs about a third of a millisecond;
//! a connector sends the same token for up to an hour, so each token is verified once and
//! then looked up.
//!
//! The key is a keyed hash of the whole token, so the cache never holds a token and a token
//! that differs in any byte (payload, header or signature) is another entry. The hash is
//! SipHash-2-4 with a 128-bit output and a 128-bit random key drawn per VM: a keyed PRF, so
//! making a forged token land on a cached entry means finding a second preimage under a key
//! the attacker never sees. SHA-256 would do the same job at twenty times the price: over a
//! 900-byte token it takes 4.3 µs inside V8 against 0.2 µs, on every request.
//!
//! An entry is served only while `now < exp` (never beyond, whatever the clock skew: a later
//! request is verified again and the skew applied there). The cache holds at most `capacity`
//! entries; inserting into a full cache first drops every expired entry, then the oldest
//! inserted ones.

use super::failure::JwtFailure;
use super::verify::VerifiedToken;
use siphasher::sip128::{Hasher128, SipHasher24};
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::rc::Rc;

pub const DEFAULT_CAPACITY: usize = 1024;

pub type TokenHash = u128;

/// A 128-bit key for the token hash, from the system's randomness (WASI `random_get` in
/// Envoy). `None` when no randomness is available: then nothing may be cached.
pub fn random_hash_key() -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).ok()?;
    Some(key)
}

/// How long a token that failed verification is refused without verifying it again.
pub const FAILURE_TTL_S: u64 = 30;

/// Entries that expire, at most `capacity` of them: a full map first drops what has expired,
/// then the oldest inserted.
#[derive(Debug)]
struct Bounded<V> {
    entries: HashMap<TokenHash, (V, u64)>,
    /// Insertion order, for eviction; may name entries already gone.
    order: VecDeque<TokenHash>,
    capacity: usize,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&mut self, hash: &TokenHash, now: u64) -> Option<&V> {
        let expired = now >= self.entries.get(hash)?.1;
        if expired {
            self.entries.remove(hash);
            return None;
        }
        self.entries.get(hash).map(|(value, _)| value)
    }

    fn insert(&mut self, hash: TokenHash, value: V, until: u64, now: u64) {
        if self.capacity == 0 || now >= until {
            return;
        }
        if !self.entries.contains_key(&hash) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, until)| now < *until);
            while self.entries.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        if self.entries.insert(hash, (value, until)).is_none() {
            self.order.push_back(hash);
        }
        // Entries removed on lookup leave stale names behind; keep the queue bounded too.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|h| entries.contains_key(h));
        }
    }
}

/// Verified tokens, and tokens that lastingly failed verification (so a client repeating a
/// bad token costs one verification per `FAILURE_TTL_S`, not one per request).
#[derive(Debug)]
pub struct TokenCache {
    hash_key: [u8; 16],
    verified: Bounded<Rc<VerifiedToken>>,
    failed: Bounded<JwtFailure>,
}

impl Default for TokenCache {
    /// A cache that holds nothing (no `jwt` section configured).
    fn default() -> Self {
        Self::new(0, [0; 16])
    }
}

impl TokenCache {
    pub fn new(capacity: usize, hash_key: [u8; 16]) -> Self {
        Self {
            hash_key,
            verified: Bounded::new(capacity),
            failed: Bounded::new(capacity),
        }
    }

    pub fn hash(&self, token: &str) -> TokenHash {
        let mut hasher = SipHasher24::new_with_key(&self.hash_key);
        hasher.write(token.as_bytes());
        hasher.finish128().as_u128()
    }

    /// Verified tokens held.
    pub fn len(&self) -> usize {
        self.verified.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.verified.entries.is_empty()
    }

    /// The verified token, if cached and not expired at `now`.
    pub fn get(&mut self, hash: &TokenHash, now: u64) -> Option<Rc<VerifiedToken>> {
        self.verified.get(hash, now).map(Rc::clone)
    }

    /// Keeps a verified token until its `exp`.
    pub fn insert(&mut self, hash: TokenHash, token: Rc<VerifiedToken>, now: u64) {
        let exp = token.exp;
        self.verified.insert(hash, token, exp, now);
    }

    /// Why this token failed, if it did in the last `FAILURE_TTL_S`.
    pub fn failure(&mut self, hash: &TokenHash, now: u64) -> Option<JwtFailure> {
        self.failed.get(hash, now).copied()
    }

    pub fn insert_failure(&mut self, hash: TokenHash, failure: JwtFailure, now: u64) {
        self.failed
            .insert(hash, failure, now.saturating_add(FAILURE_TTL_S), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::claims::ClaimMap;

    fn token(exp: u64) -> Rc<VerifiedToken> {
        Rc::new(VerifiedToken {
            exp,
            claims: ClaimMap::new(),
        })
    }

    fn cache(capacity: usize) -> TokenCache {
        TokenCache::new(capacity, *b"0123456789abcdef")
    }

    fn token_hash(token: &str) -> TokenHash {
        cache(0).hash(token)
    }

    #[test]
    fn hit_until_exp_never_beyond() {
        let mut cache = cache(4);
        let h = token_hash("a.b.c");
        cache.insert(h, token(100), 10);
        assert!(cache.get(&h, 10).is_some());
        assert!(cache.get(&h, 99).is_some());
        assert!(cache.get(&h, 100).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when met");
        assert!(cache.get(&h, 50).is_none());
    }

    #[test]
    fn expired_tokens_are_not_stored() {
        let mut cache = cache(4);
        cache.insert(token_hash("t"), token(10), 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn different_tokens_do_not_collide() {
        let mut cache = cache(4);
        cache.insert(token_hash("a.b.c"), token(100), 0);
        assert!(cache.get(&token_hash("a.b.d"), 0).is_none());
        assert!(cache.get(&token_hash("a.b.c"), 0).is_some());
    }

    #[test]
    fn the_bound_holds_expired_first_then_oldest() {
        let mut cache = cache(3);
        cache.insert(token_hash("short"), token(20), 0);
        cache.insert(token_hash("old"), token(1000), 0);
        cache.insert(token_hash("mid"), token(1000), 0);
        // At t=30 "short" has expired: it goes first, the others stay.
        cache.insert(token_hash("new"), token(1000), 30);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("old"), 30).is_some());
        // Nothing expired now: the oldest inserted goes.
        cache.insert(token_hash("newer"), token(1000), 30);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("old"), 30).is_none());
        assert!(cache.get(&token_hash("mid"), 30).is_some());
        assert!(cache.get(&token_hash("newer"), 30).is_some());
        for n in 0..1000 {
            cache.insert(token_hash(&format!("t{n}")), token(5000), 40);
            assert!(cache.len() <= 3);
            assert!(cache.verified.order.len() <= 6);
        }
    }

    #[test]
    fn the_hash_depends_on_every_byte_and_on_the_key() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let base = token_hash(token);
        for at in [0, token.len() / 2, token.len() - 1] {
            let mut changed = token.as_bytes().to_vec();
            changed[at] ^= 1;
            assert_ne!(
                base,
                token_hash(std::str::from_utf8(&changed).unwrap()),
                "byte {at}"
            );
        }
        let other_key = TokenCache::new(0, *b"fedcba9876543210");
        assert_ne!(base, other_key.hash(token));
        assert!(random_hash_key().is_some());
        assert_ne!(random_hash_key(), random_hash_key());
    }

    #[test]
    fn failures_are_remembered_for_a_while_and_bounded() {
        let mut cache = cache(2);
        let bad = token_hash("bad.token.x");
        cache.insert_failure(bad, JwtFailure::SignatureInvalid, 100);
        assert_eq!(cache.failure(&bad, 100), Some(JwtFailure::SignatureInvalid));
        assert_eq!(
            cache.failure(&bad, 100 + FAILURE_TTL_S - 1),
            Some(JwtFailure::SignatureInvalid)
        );
        assert_eq!(cache.failure(&bad, 100 + FAILURE_TTL_S), None);
        for n in 0..10 {
            cache.insert_failure(token_hash(&format!("b{n}")), JwtFailure::Malformed, 200);
        }
        assert!(cache.failed.entries.len() <= 2);
        assert!(cache.is_empty(), "failures never count as verified");
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = cache(0);
        cache.insert(token_hash("t"), token(100), 0);
        assert!(cache.get(&token_hash("t"), 0).is_none());
    }
}
