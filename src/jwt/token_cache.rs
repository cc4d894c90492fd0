//! Verified tokens, per VM. Verifying RS256 inside wasm costs about a third of a millisecond;
//! a connector sends the same token for up to an hour, so each token is verified once and
//! then looked up.
//!
//! The key is the SHA-256 of the whole token: the cache never holds a token. An entry is
//! served only while `now < exp` (never beyond, whatever the clock skew: a later request
//! is verified again and the skew applied there). The cache holds at most `capacity`
//! entries; inserting into a full cache first drops every expired entry, then the oldest
//! inserted ones.

use super::verify::VerifiedToken;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

pub const DEFAULT_CAPACITY: usize = 1024;

pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<TokenHash, Rc<VerifiedToken>>,
    /// Insertion order, for eviction; may name entries already gone.
    order: VecDeque<TokenHash>,
    capacity: usize,
}

impl Default for TokenCache {
    /// A cache that holds nothing (no `jwt` section configured).
    fn default() -> Self {
        Self::new(0)
    }
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The verified token, if cached and not expired at `now`.
    pub fn get(&mut self, hash: &TokenHash, now: u64) -> Option<Rc<VerifiedToken>> {
        let token = self.entries.get(hash)?;
        if now < token.exp {
            return Some(Rc::clone(token));
        }
        self.entries.remove(hash);
        None
    }

    pub fn insert(&mut self, hash: TokenHash, token: Rc<VerifiedToken>, now: u64) {
        if self.capacity == 0 || now >= token.exp {
            return;
        }
        if !self.entries.contains_key(&hash) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, t| now < t.exp);
            while self.entries.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        if self.entries.insert(hash, token).is_none() {
            self.order.push_back(hash);
        }
        // Entries removed on lookup leave stale names behind; keep the queue bounded too.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|h| entries.contains_key(h));
        }
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

    #[test]
    fn hit_until_exp_never_beyond() {
        let mut cache = TokenCache::new(4);
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
        let mut cache = TokenCache::new(4);
        cache.insert(token_hash("t"), token(10), 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn different_tokens_do_not_collide() {
        let mut cache = TokenCache::new(4);
        cache.insert(token_hash("a.b.c"), token(100), 0);
        assert!(cache.get(&token_hash("a.b.d"), 0).is_none());
        assert!(cache.get(&token_hash("a.b.c"), 0).is_some());
    }

    #[test]
    fn the_bound_holds_expired_first_then_oldest() {
        let mut cache = TokenCache::new(3);
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
            assert!(cache.order.len() <= 6);
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert(token_hash("t"), token(100), 0);
        assert!(cache.get(&token_hash("t"), 0).is_none());
    }
}
