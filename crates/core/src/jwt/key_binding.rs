//! Which key a cached verdict rests on. A token verified with a fetched key is served from the
//! cache only while that key is still in the fetched set: when the provider drops a key (it was
//! compromised, say), the tokens it signed stop being accepted at the next refetch, not at their
//! `exp`. Inline keys are part of the configuration and never leave.

use super::keys::{KeyIdentity, KeySet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBinding {
    /// A key of the configuration's `jwks`.
    Inline,
    /// A fetched key, last seen in the set of this generation.
    Fetched { generation: u64, key: KeyIdentity },
}

impl KeyBinding {
    /// Whether the key is still in `fetched`, the current fetched set. A set of another
    /// generation that still holds the key rebinds to it, so the next look is one comparison.
    pub fn still_held(&mut self, fetched: Option<&KeySet>) -> bool {
        match self {
            Self::Inline => true,
            Self::Fetched { generation, key } => match fetched {
                Some(set) if set.generation() == *generation => true,
                Some(set) if set.holds(key) => {
                    *generation = set.generation();
                    true
                }
                _ => false,
            },
        }
    }
}

/// What a remembered failure holds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureBinding {
    /// True of the token whatever the keys (a bad signature under a named key, an expiry).
    Lasting,
    /// True only of the fetched set of this generation (0: none fetched yet): a token without
    /// `kid` that no key verifies may be signed by a key the next set brings.
    KeysOf { generation: u64 },
}

impl FailureBinding {
    pub fn keys_of(fetched: Option<&KeySet>) -> Self {
        Self::KeysOf {
            generation: fetched.map_or(0, KeySet::generation),
        }
    }

    /// Whether the failure still holds with `fetched`, the current fetched set.
    pub fn still_holds(self, fetched: Option<&KeySet>) -> bool {
        match self {
            Self::Lasting => true,
            Self::KeysOf { generation } => fetched.map_or(0, KeySet::generation) == generation,
        }
    }
}
