//! Verifying one token against the configured keys and rules: structure, algorithm, key,
//! signature, registered claims. Every failure is a [`JwtFailure`], whose text is a short
//! reason for the 401 message; none repeats anything from the token.

use super::algorithm::Algorithm;
use super::claims::{check_registered, well_formed, ClaimMap, RegisteredRules};
use super::failure::JwtFailure;
use super::key_binding::KeyBinding;
use super::keys::{base64url, KeyChoiceError, KeySet};
use super::signature;
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use serde::Deserialize;

/// Tokens longer than this are refused before any parsing (Entra tokens are 1 to 4 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token without `kid` is tried against at most this many keys that fit its algorithm
/// (inline keys first, then fetched ones, each in published order). Entra ID, and every
/// provider that rotates keys, names the key in every token, so this only bounds tokens of
/// small hand-kept key sets — and an attacker's, who would otherwise buy one signature check
/// per key of the set with one request.
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

/// A header longer than this (base64url) is refused as malformed.
const MAX_HEADER_BYTES: usize = 8192;

/// The JOSE header as tollgate reads it. The members it does not use are typed all the same,
/// so a header is refused exactly when it was before (jwt-simple's `JWTHeader`, which parsed
/// it until now): `jwk` as an object, `x5c` not an array of strings, a duplicate member.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
    #[serde(rename = "cty", default)]
    _cty: Option<String>,
    #[serde(rename = "typ", default)]
    _typ: Option<String>,
    #[serde(rename = "x5c", default)]
    _x5c: Option<Vec<String>>,
    #[serde(rename = "jku", default)]
    _jku: Option<String>,
    #[serde(rename = "jwk", default)]
    _jwk: Option<String>,
    #[serde(rename = "x5u", default)]
    _x5u: Option<String>,
    #[serde(rename = "x5t", default)]
    _x5t: Option<String>,
    #[serde(rename = "x5t#S256", default)]
    _x5t_s256: Option<String>,
    #[serde(rename = "salt", default)]
    _salt: Option<String>,
}

impl Header {
    /// The header part: strict base64url (no padding), JSON.
    fn decode(part: &str) -> Option<Self> {
        if part.len() > MAX_HEADER_BYTES {
            return None;
        }
        let bytes = Base64UrlSafeNoPadding::decode_to_vec(part, None).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What the request path keeps of a verified token: its expiry and the claims the plan reads.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub exp: u64,
    pub claims: ClaimMap,
}

/// Everything a token is checked against, compiled from the `jwt` section.
#[derive(Debug)]
pub struct TokenVerifier {
    pub keys: KeySet,
    pub algorithms: Vec<Algorithm>,
    pub rules: RegisteredRules,
    /// Claims kept in the cache: those the plan reads after verification.
    pub kept_claims: Vec<String>,
    /// Keys are fetched beside the inline ones, so the set at hand may lack a token's key.
    pub keys_fetched: bool,
}

/// A verified token and the key that verified it.
#[derive(Debug)]
pub struct Verified {
    pub token: VerifiedToken,
    pub key: KeyBinding,
}

impl TokenVerifier {
    /// `fetched`: keys from the identity provider, used beside the inline ones.
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        fetched: Option<&KeySet>,
    ) -> Result<Verified, JwtFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtFailure::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtFailure::Malformed);
        };
        let signing_input = token
            .get(..token.len() - signature.len() - 1)
            .ok_or(JwtFailure::Malformed)?;

        let header = Header::decode(header).ok_or(JwtFailure::Malformed)?;
        if header.crit.is_some_and(|crit| !crit.is_empty()) {
            return Err(JwtFailure::UnsupportedCriticalHeader);
        }
        let alg = Algorithm::parse(&header.alg)
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(JwtFailure::AlgorithmNotAllowed)?;
        let mut candidates = Vec::new();
        let mut mismatch = false;
        let sets = std::iter::once((&self.keys, true)).chain(fetched.map(|set| (set, false)));
        for (set, inline) in sets {
            match set.candidates(header.kid.as_deref(), alg) {
                Ok(keys) => candidates.extend(keys.into_iter().map(|key| {
                    let binding = match inline {
                        true => KeyBinding::Inline,
                        false => KeyBinding::Fetched {
                            generation: set.generation(),
                            key: key.identity,
                        },
                    };
                    (key, binding)
                })),
                Err(KeyChoiceError::AlgorithmMismatch) => mismatch = true,
                Err(KeyChoiceError::NotFound) => {}
            }
        }
        if header.kid.is_none() {
            // Every try is a signature check (~140 µs for RS256 in wasm): a token without kid
            // may not make a request cost one per key of a large set.
            candidates.truncate(MAX_KIDLESS_CANDIDATES);
        }
        if candidates.is_empty() {
            return Err(if mismatch {
                JwtFailure::AlgorithmMismatch
            } else {
                JwtFailure::SigningKeyNotFound
            });
        }

        let claims = base64url(payload)
            .and_then(|bytes| serde_json::from_slice::<ClaimMap>(&bytes).ok())
            .ok_or(JwtFailure::Malformed)?;
        well_formed(&claims)?;
        let signature = base64url(signature).ok_or(JwtFailure::Malformed)?;

        let signer = candidates
            .iter()
            .find(|(key, _)| {
                signature::valid(&key.material, alg, signing_input.as_bytes(), &signature)
            })
            .map(|(_, binding)| *binding);
        let Some(key) = signer else {
            // Without a kid, a key not fetched yet may have signed it.
            let unnamed = header.kid.is_none() && self.keys_fetched;
            return Err(match unnamed {
                true => JwtFailure::NoKeyVerifies,
                false => JwtFailure::SignatureInvalid,
            });
        };

        let exp = check_registered(&claims, &self.rules, now)?;
        let kept = claims
            .into_iter()
            .filter(|(name, _)| self.kept_claims.iter().any(|k| k == name))
            .collect();
        Ok(Verified {
            token: VerifiedToken { exp, claims: kept },
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Header;
    use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    use jwt_simple::prelude::Token;

    fn b64(text: &str) -> String {
        Base64UrlSafeNoPadding::encode_to_string(text).unwrap()
    }

    /// The header is read as jwt-simple's `Token::decode_metadata` read it before: the same
    /// headers refused, the same `alg`, `kid` and `crit` from the others.
    #[test]
    fn headers_read_as_jwt_simple_read_them() {
        // Base64url of about 8270 and 8010 bytes: over and under the limit.
        let long = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(6180));
        let shorter = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(5980));
        let headers = [
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":"a","typ":"JWT"}"#,
            r#" {"alg":"ES256","kid":null,"crit":null} "#,
            r#"{"alg":"PS256","crit":[]}"#,
            r#"{"alg":"PS256","crit":["exp"]}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"RS256","x5c":["MII"],"x5t#S256":"x","jku":"https://a","salt":"s"}"#,
            r#"{"alg":"RS256","unknown":{"nested":[1,2]}}"#,
            r#"{"kid":"a"}"#,
            r#"{"alg":256}"#,
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","crit":"exp"}"#,
            r#"{"alg":"RS256","crit":[1]}"#,
            r#"{"alg":"RS256","jwk":{"kty":"RSA"}}"#,
            r#"{"alg":"RS256","x5c":"MII"}"#,
            r#"{"alg":"RS256","alg":"HS256"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            r#"{"alg":"RS256"} x"#,
            r#"{"alg":"RS256""#,
            r#"["RS256"]"#,
            "",
            "null",
            &long,
            &shorter,
        ];
        let mut parts: Vec<String> = headers.iter().map(|h| b64(h)).collect();
        parts.extend(
            [
                "eyJhbGciOiJSUzI1NiJ9=",
                "eyJhbGciOiJSUzI1NiJ9==",
                "eyJhbGciOiJSUzI1NiJ9%",
                "eyJhbGciOiJSUzI1NiJ9+",
                "eyJhbGciOiJSUzI1NiJ",
                "",
            ]
            .map(String::from),
        );
        for part in parts {
            let token = format!("{part}.e30.c2ln");
            let ours = Header::decode(&part);
            let theirs = Token::decode_metadata(&token).ok();
            assert_eq!(ours.is_some(), theirs.is_some(), "{part}");
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                assert_eq!(ours.alg, theirs.algorithm(), "{part}");
                assert_eq!(ours.kid.as_deref(), theirs.key_id(), "{part}");
                assert_eq!(ours.crit.as_deref(), theirs.critical(), "{part}");
            }
        }
    }
}
