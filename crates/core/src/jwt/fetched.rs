//! A key set fetched from the identity provider. An inline `jwks` with an unusable key is an
//! operator's error and is refused at load; a provider's set is not ours to fix, and one odd key
//! in it (a P-521 key, a short RSA key, a key type added next year) must not take every other
//! key down with it. So each key that cannot be used is skipped and reported, and the set is
//! refused only when no key is left. HMAC secrets (`kty: oct`) are never taken from an
//! endpoint: a public URL that hands out a secret would let anyone sign tokens.

use super::keys::{for_signing, parse_jwk, JwkError, JwksError, KeySet};
use super::remote::FetchError;
use crate::config::JwkConfig;
use serde::Deserialize;
use std::fmt;

/// Longest `kid` or reason text a log line repeats (the provider's text, not ours).
const MAX_TEXT_CHARS: usize = 96;

/// A key of a fetched set that was left out, and why. Holds no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its position in the set's `keys`.
    pub index: usize,
    /// Its `kid`, shortened and escaped for a log line.
    pub kid: Option<String>,
    pub reason: JwkError,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kid = self.kid.as_deref().unwrap_or("none");
        let reason = printable(&self.reason.to_string());
        write!(f, "keys[{}] (kid {kid}): {reason}", self.index)
    }
}

/// The usable keys of a fetched set, and the ones skipped.
#[derive(Debug)]
pub struct FetchedKeys {
    pub set: KeySet,
    pub skipped: Vec<SkippedKey>,
}

/// Only `keys` is read as a list first: each key is then read on its own, so one key of an
/// unexpected shape is skipped like any other unusable key.
#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Parses a fetched JWKS as fetch number `generation`. `Err` only when the body is no JWKS or
/// no key of it is usable; `skipped` names every key left out.
pub fn key_set_from_body(
    body: &[u8],
    generation: u64,
) -> Result<FetchedKeys, (FetchError, Vec<SkippedKey>)> {
    let raw: RawJwks = serde_json::from_slice(body)
        .map_err(|err| (FetchError::JwksNotJson(err.to_string()), Vec::new()))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in raw.keys.into_iter().enumerate() {
        let jwk = match serde_json::from_value::<JwkConfig>(value) {
            Ok(jwk) => jwk,
            Err(_) => {
                skipped.push(SkippedKey {
                    index,
                    kid: None,
                    reason: JwkError::NotAKey,
                });
                continue;
            }
        };
        if !for_signing(&jwk) {
            continue;
        }
        let parsed = if jwk.kty == "oct" {
            Err(JwkError::SymmetricKeyFetched)
        } else {
            parse_jwk(&jwk)
        };
        match parsed {
            Ok(key) => keys.push(key),
            Err(reason) => skipped.push(SkippedKey {
                index,
                kid: jwk.kid.as_deref().map(printable),
                reason,
            }),
        }
    }
    if keys.is_empty() {
        let error = if skipped.is_empty() {
            FetchError::Jwks(JwksError::NoSigningKey)
        } else {
            FetchError::NoUsableKey {
                skipped: skipped.len(),
            }
        };
        return Err((error, skipped));
    }
    Ok(FetchedKeys {
        set: KeySet::new(keys, generation),
        skipped,
    })
}

/// The provider's text as a log may carry it: control characters escaped, and cut short.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if let Some((at, _)) = out.char_indices().nth(MAX_TEXT_CHARS) {
        out.truncate(at);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tokens::{b64, jwks};
    use serde_json::json;

    fn parse(body: serde_json::Value) -> Result<FetchedKeys, (FetchError, Vec<SkippedKey>)> {
        key_set_from_body(body.to_string().as_bytes(), 7)
    }

    /// The inline test set's usable public keys (RSA, RSA-PSS, P-256, P-384, Ed25519).
    fn public_keys() -> Vec<serde_json::Value> {
        let all = jwks();
        all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] != "oct" && k["use"] != "enc")
            .cloned()
            .collect()
    }

    #[test]
    fn unusable_keys_are_skipped_with_their_kid_and_reason() {
        let mut keys = public_keys();
        let usable = keys.len();
        keys.extend([
            json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB" }),
            json!({ "kty": "RSA", "kid": "short", "n": b64(&[0xc5; 128]), "e": "AQAB" }),
            json!({ "kty": "PQC", "kid": "future" }),
            json!({ "kty": "RSA", "kid": "odd-alg", "alg": "RSA-OAEP-512", "n": "AQAB", "e": "AQAB" }),
            json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB" }),
            json!({ "kid": 7 }),
        ]);
        let fetched = parse(json!({ "keys": keys })).unwrap();
        assert_eq!(fetched.set.len(), usable);
        assert_eq!(fetched.set.generation(), 7);
        let lines: Vec<String> = fetched.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                format!("keys[{usable}] (kid p521): crv Some(\"P-521\") is not supported (P-256 for ES256, P-384 for ES384)"),
                format!("keys[{}] (kid short): not a usable RSA public key (modulus too small; modulus 2048 to 8192 bits)", usable + 1),
                format!("keys[{}] (kid future): kty 'PQC' is not supported (RSA, EC, OKP or oct)", usable + 2),
                format!("keys[{}] (kid odd-alg): alg 'RSA-OAEP-512' is not a supported signing algorithm", usable + 3),
                format!("keys[{}] (kid none): not a JSON Web Key (kty and every member must be strings)", usable + 5),
            ]
        );
    }

    #[test]
    fn hmac_secrets_are_never_taken_from_an_endpoint() {
        let mut keys = public_keys();
        keys.push(json!({ "kty": "oct", "kid": "h", "k": b64(&[1; 32]) }));
        let fetched = parse(json!({ "keys": keys })).unwrap();
        assert_eq!(fetched.skipped.len(), 1);
        assert_eq!(fetched.skipped[0].reason, JwkError::SymmetricKeyFetched);
        assert_eq!(fetched.skipped[0].kid.as_deref(), Some("h"));
        // A set of nothing but a secret is no set.
        let only = parse(json!({ "keys": [{ "kty": "oct", "kid": "h", "k": b64(&[1; 32]) }] }));
        let (error, skipped) = only.unwrap_err();
        assert_eq!(error, FetchError::NoUsableKey { skipped: 1 });
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn only_an_empty_result_is_refused() {
        let (error, skipped) = parse(json!({ "keys": [] })).unwrap_err();
        assert_eq!(error, FetchError::Jwks(JwksError::NoSigningKey));
        assert!(skipped.is_empty());
        let (error, _) = parse(json!({ "keys": [{ "kty": "PQC" }] })).unwrap_err();
        assert_eq!(error.to_string(), "no usable signing key (1 skipped)");
        assert!(matches!(
            key_set_from_body(b"nope", 1),
            Err((FetchError::JwksNotJson(_), _))
        ));
        assert!(matches!(
            parse(json!({ "keys": {} })),
            Err((FetchError::JwksNotJson(_), _))
        ));
    }

    #[test]
    fn a_log_line_never_carries_key_material_or_raw_provider_text() {
        let n = b64(&[0xc5; 128]);
        let kid = format!("bad\nkid{}", "x".repeat(500));
        let keys = json!({ "keys": [
            { "kty": "RSA", "kid": kid, "n": n, "e": "AQAB" },
            public_keys()[0].clone()
        ]});
        let fetched = parse(keys).unwrap();
        let line = fetched.skipped[0].to_string();
        assert!(!line.contains(&n), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("bad\\nkid"), "{line}");
        assert!(line.len() < 300, "{line}");
    }
}
