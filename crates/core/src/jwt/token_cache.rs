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
//! request is verified again and the skew applied there), and only while the key that verified
//! it is still in the key set (`key_binding.rs`). The cache holds at most `capacity` entries;
//! inserting into a full cache drops the oldest inserted entry, in constant time: a full cache
//! under a flood of junk tokens must not cost a scan per token.

use super::failure::{JwtFailure, Persistence};
use super::key_binding::{FailureBinding, KeyBinding};
use super::keys::KeySet;
use super::verify::VerifiedToken;
use crate::keyed_hash::keyed_hash;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

pub const DEFAULT_CAPACITY: usize = 1024;

pub type TokenHash = u128;

/// How long a token that failed verification is refused without verifying it again.
pub const FAILURE_TTL_S: u64 = 30;

/// Entries that expire, at most `capacity` of them: a full map drops the oldest inserted.
#[derive(Debug)]
struct Bounded<V> {
    entries: HashMap<TokenHash, Slot<V>>,
    /// Insertion order, for eviction: (hash, insertion number). A name whose entry is gone,
    /// or was inserted again since, is skipped when met.
    order: VecDeque<(TokenHash, u64)>,
    inserted: u64,
    capacity: usize,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    until: u64,
    /// Its insertion number, to tell its own name in `order` from a stale one.
    number: u64,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            order: VecDeque::new(),
            inserted: 0,
            capacity,
        }
    }

    /// The entry, unless it expired at `now` (then it is dropped).
    fn get_mut(&mut self, hash: &TokenHash, now: u64) -> Option<&mut V> {
        let expired = now >= self.entries.get(hash)?.until;
        if expired {
            self.entries.remove(hash);
            return None;
        }
        self.entries.get_mut(hash).map(|slot| &mut slot.value)
    }

    fn remove(&mut self, hash: &TokenHash) {
        self.entries.remove(hash);
    }

    fn insert(&mut self, hash: TokenHash, value: V, until: u64, now: u64) {
        if self.capacity == 0 || now >= until {
            return;
        }
        if let Some(slot) = self.entries.get_mut(&hash) {
            slot.value = value;
            slot.until = until;
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some((oldest, number)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&oldest)
                .is_some_and(|slot| slot.number == number)
            {
                self.entries.remove(&oldest);
            }
        }
        let number = self.inserted;
        self.inserted = self.inserted.wrapping_add(1);
        self.entries.insert(
            hash,
            Slot {
                value,
                until,
                number,
            },
        );
        self.order.push_back((hash, number));
        // Entries removed on lookup leave stale names behind. Dropping them all once the queue
        // is twice the bound costs one pass per `capacity` insertions: constant, amortised.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|(hash, number)| {
                entries.get(hash).is_some_and(|slot| slot.number == *number)
            });
        }
    }
}

/// A verified token and the key it rests on.
#[derive(Debug)]
struct Verified {
    token: Rc<VerifiedToken>,
    key: KeyBinding,
}

/// A failure and what it holds for.
#[derive(Debug, Clone, Copy)]
struct Failed {
    failure: JwtFailure,
    holds: FailureBinding,
}

/// Verified tokens, and tokens that failed verification for a reason that stays true (so a
/// client repeating a bad token costs one verification per `FAILURE_TTL_S`, not one per
/// request).
#[derive(Debug)]
pub struct TokenCache {
    hash_key: [u8; 16],
    verified: Bounded<Verified>,
    failed: Bounded<Failed>,
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
        keyed_hash(&self.hash_key, token.as_bytes())
    }

    /// Verified tokens held.
    pub fn len(&self) -> usize {
        self.verified.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.verified.entries.is_empty()
    }

    /// The verified token, if cached, not expired at `now`, and its key still in the key set
    /// (`fetched`: the current fetched set). An entry whose key left is dropped.
    pub fn get(
        &mut self,
        hash: &TokenHash,
        now: u64,
        fetched: Option<&KeySet>,
    ) -> Option<Rc<VerifiedToken>> {
        let entry = self.verified.get_mut(hash, now)?;
        if entry.key.still_held(fetched) {
            return Some(Rc::clone(&entry.token));
        }
        self.verified.remove(hash);
        None
    }

    /// Keeps a token verified with an inline key until its `exp`.
    pub fn insert(&mut self, hash: TokenHash, token: Rc<VerifiedToken>, now: u64) {
        self.insert_verified(hash, token, KeyBinding::Inline, now);
    }

    /// Keeps a verified token until its `exp`, for as long as `key` stays in the key set.
    pub fn insert_verified(
        &mut self,
        hash: TokenHash,
        token: Rc<VerifiedToken>,
        key: KeyBinding,
        now: u64,
    ) {
        let exp = token.exp;
        self.verified
            .insert(hash, Verified { token, key }, exp, now);
    }

    /// Why this token failed, if it did in the last `FAILURE_TTL_S` for a reason that still
    /// holds with no fetched keys.
    pub fn failure(&mut self, hash: &TokenHash, now: u64) -> Option<JwtFailure> {
        self.failure_with(hash, now, None)
    }

    /// Why this token failed, if it did in the last `FAILURE_TTL_S` for a reason that still
    /// holds with `fetched`, the current fetched set.
    pub fn failure_with(
        &mut self,
        hash: &TokenHash,
        now: u64,
        fetched: Option<&KeySet>,
    ) -> Option<JwtFailure> {
        let failed = *self.failed.get_mut(hash, now)?;
        if failed.holds.still_holds(fetched) {
            return Some(failed.failure);
        }
        self.failed.remove(hash);
        None
    }

    /// Remembers a failure that stays true whatever the keys.
    pub fn insert_failure(&mut self, hash: TokenHash, failure: JwtFailure, now: u64) {
        self.remember(hash, failure, FailureBinding::Lasting, now);
    }

    /// Remembers a failure for as long as it holds: whatever the keys, or while the fetched
    /// set stays `fetched`; a failure that may change any moment is not remembered.
    pub fn remember_failure(
        &mut self,
        hash: TokenHash,
        failure: JwtFailure,
        fetched: Option<&KeySet>,
        now: u64,
    ) {
        match failure.persistence() {
            Persistence::Lasting => self.insert_failure(hash, failure, now),
            Persistence::UntilKeysChange => {
                self.remember(hash, failure, FailureBinding::keys_of(fetched), now);
            }
            Persistence::Passing => {}
        }
    }

    fn remember(&mut self, hash: TokenHash, failure: JwtFailure, holds: FailureBinding, now: u64) {
        self.failed.insert(
            hash,
            Failed { failure, holds },
            now.saturating_add(FAILURE_TTL_S),
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::claims::ClaimMap;
    use crate::keyed_hash::random_hash_key;

    fn token(exp: u64) -> Rc<VerifiedToken> {
        Rc::new(VerifiedToken {
            exp,
            claims: ClaimMap::new(),
        })
    }

    fn fetched_set(kids: &[&str], generation: u64) -> KeySet {
        let body = crate::testing::tokens::public_jwks(kids).to_string();
        crate::jwt::fetched::key_set_from_body(body.as_bytes(), generation)
            .unwrap()
            .set
    }

    /// The binding of a token verified by `kid` of `set`.
    fn bound_to(set: &KeySet, kid: &str) -> KeyBinding {
        let alg = match kid {
            "ec-256" => crate::jwt::algorithm::Algorithm::ES256,
            _ => crate::jwt::algorithm::Algorithm::RS256,
        };
        let key = set.candidates(Some(kid), alg).unwrap()[0];
        KeyBinding::Fetched {
            generation: set.generation(),
            key: key.identity,
        }
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
        assert!(cache.get(&h, 10, None).is_some());
        assert!(cache.get(&h, 99, None).is_some());
        assert!(cache.get(&h, 100, None).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when met");
        assert!(cache.get(&h, 50, None).is_none());
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
        assert!(cache.get(&token_hash("a.b.d"), 0, None).is_none());
        assert!(cache.get(&token_hash("a.b.c"), 0, None).is_some());
    }

    #[test]
    fn the_bound_holds_oldest_inserted_first() {
        let mut cache = cache(3);
        cache.insert(token_hash("short"), token(20), 0);
        cache.insert(token_hash("old"), token(1000), 0);
        cache.insert(token_hash("mid"), token(1000), 0);
        // "short" was inserted first: it goes first, the others stay.
        cache.insert(token_hash("new"), token(1000), 30);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("old"), 30, None).is_some());
        // Nothing expired now: the oldest inserted goes.
        cache.insert(token_hash("newer"), token(1000), 30);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("old"), 30, None).is_none());
        assert!(cache.get(&token_hash("mid"), 30, None).is_some());
        assert!(cache.get(&token_hash("newer"), 30, None).is_some());
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
        assert!(cache.get(&token_hash("t"), 0, None).is_none());
    }

    #[test]
    fn a_full_cache_evicts_the_oldest_inserted_without_a_scan() {
        let mut cache = cache(3);
        cache.insert(token_hash("a"), token(1000), 0);
        cache.insert(token_hash("b"), token(20), 0);
        cache.insert(token_hash("c"), token(1000), 0);
        // At t=30 "b" has expired, but finding it would take a scan: the oldest goes.
        cache.insert(token_hash("d"), token(1000), 30);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("a"), 30, None).is_none());
        assert!(cache.get(&token_hash("c"), 30, None).is_some());
        assert!(cache.get(&token_hash("d"), 30, None).is_some());
        // The same holds for failures, whose entries all live FAILURE_TTL_S.
        let mut cache = self::cache(2);
        for (n, name) in ["x", "y", "z"].iter().enumerate() {
            cache.insert_failure(token_hash(name), JwtFailure::Malformed, n as u64);
        }
        assert_eq!(cache.failure(&token_hash("x"), 2), None);
        assert!(cache.failure(&token_hash("y"), 2).is_some());
        assert!(cache.failure(&token_hash("z"), 2).is_some());
    }

    #[test]
    fn a_stale_name_never_evicts_a_newer_entry_of_the_same_token() {
        let mut cache = cache(2);
        cache.insert(token_hash("a"), token(10), 0);
        assert!(
            cache.get(&token_hash("a"), 10, None).is_none(),
            "expired, dropped"
        );
        cache.insert(token_hash("b"), token(1000), 10);
        cache.insert(token_hash("a"), token(1000), 10);
        // Full: the first name in the queue is the dropped "a"; the live "a" stays.
        cache.insert(token_hash("c"), token(1000), 10);
        assert!(cache.get(&token_hash("a"), 10, None).is_some());
        assert!(cache.get(&token_hash("b"), 10, None).is_none());
    }

    #[test]
    fn an_entry_is_never_served_once_its_key_left_the_set() {
        let mut cache = cache(4);
        let before = fetched_set(&["rsa-1", "ec-256"], 1);
        let h = token_hash("signed.by.rsa-1");
        cache.insert_verified(h, token(1000), bound_to(&before, "rsa-1"), 0);
        assert!(cache.get(&h, 1, Some(&before)).is_some());
        // The provider dropped rsa-1 (compromised): the next set lacks it.
        let after = fetched_set(&["ec-256"], 2);
        assert!(cache.get(&h, 2, Some(&after)).is_none());
        assert!(cache.is_empty(), "the entry is gone for good");
        assert!(cache.get(&h, 3, Some(&before)).is_none());
        // Without any fetched set, a fetched key is not held either.
        cache.insert_verified(h, token(1000), bound_to(&before, "rsa-1"), 4);
        assert!(cache.get(&h, 4, None).is_none());
    }

    #[test]
    fn an_entry_follows_its_key_into_the_next_set_and_inline_keys_never_leave() {
        let mut cache = cache(4);
        let first = fetched_set(&["rsa-1"], 1);
        let h = token_hash("signed.by.rsa-1");
        cache.insert_verified(h, token(1000), bound_to(&first, "rsa-1"), 0);
        let second = fetched_set(&["rsa-1", "ec-256"], 2);
        assert!(cache.get(&h, 1, Some(&second)).is_some());
        assert!(
            cache
                .get(&h, 2, Some(&fetched_set(&["rsa-1"], 3)))
                .is_some(),
            "rebound to each set that still holds it"
        );
        let inline = token_hash("signed.by.an.inline.key");
        cache.insert(inline, token(1000), 0);
        assert!(cache
            .get(&inline, 5, Some(&fetched_set(&["ec-256"], 4)))
            .is_some());
        assert!(cache.get(&inline, 5, None).is_some());
    }

    #[test]
    fn a_failure_that_may_be_a_new_key_holds_only_for_the_set_it_met() {
        let mut cache = cache(4);
        let set = fetched_set(&["rsa-1"], 1);
        let h = token_hash("no.kid.junk");
        cache.remember_failure(h, JwtFailure::NoKeyVerifies, Some(&set), 0);
        assert_eq!(
            cache.failure_with(&h, 1, Some(&set)),
            Some(JwtFailure::NoKeyVerifies),
            "a repeated junk token costs no verification"
        );
        let next = fetched_set(&["rsa-1", "ec-256"], 2);
        assert_eq!(
            cache.failure_with(&h, 2, Some(&next)),
            None,
            "new keys: verify again"
        );
        // A lasting failure holds whatever the keys; a passing one is not kept.
        cache.remember_failure(h, JwtFailure::SignatureInvalid, Some(&set), 3);
        assert!(cache.failure_with(&h, 3, Some(&next)).is_some());
        let missing = token_hash("unknown.kid");
        cache.remember_failure(missing, JwtFailure::SigningKeyNotFound, Some(&set), 3);
        assert_eq!(cache.failure_with(&missing, 3, Some(&set)), None);
    }
}
