//! Verifying one token against the configured keys and rules: structure, algorithm, key,
//! signature, registered claims. Every failure is a [`JwtFailure`], whose text is a short
//! reason for the 401 message; none repeats anything from the token.

use super::algorithm::Algorithm;
use super::claims::{check_registered, well_formed, ClaimMap, RegisteredRules};
use super::failure::JwtFailure;
use super::key_binding::KeyBinding;
use super::keys::{base64url, KeyChoiceError, KeySet};
use super::signature;
use jwt_simple::prelude::Token;

/// Tokens longer than this are refused before any parsing (Entra tokens are 1 to 4 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

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
        let (Some(_header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtFailure::Malformed);
        };
        let signing_input = token
            .get(..token.len() - signature.len() - 1)
            .ok_or(JwtFailure::Malformed)?;

        let metadata = Token::decode_metadata(token).map_err(|_| JwtFailure::Malformed)?;
        if metadata.critical().is_some_and(|crit| !crit.is_empty()) {
            return Err(JwtFailure::UnsupportedCriticalHeader);
        }
        let alg = Algorithm::parse(metadata.algorithm())
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(JwtFailure::AlgorithmNotAllowed)?;
        let mut candidates = Vec::new();
        let mut mismatch = false;
        let sets = std::iter::once((&self.keys, true)).chain(fetched.map(|set| (set, false)));
        for (set, inline) in sets {
            match set.candidates(metadata.key_id(), alg) {
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
            let unnamed = metadata.key_id().is_none() && self.keys_fetched;
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
