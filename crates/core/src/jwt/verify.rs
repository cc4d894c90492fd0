//! Verifying one token against the configured keys and rules: structure, algorithm, key,
//! signature, registered claims. Every failure is a [`JwtFailure`], whose text is a short
//! reason for the 401 message; none repeats anything from the token.

use super::algorithm::Algorithm;
use super::claims::{check_registered, well_formed, ClaimMap, RegisteredRules};
use super::failure::JwtFailure;
use super::keys::{base64url, KeyChoiceError, KeyMaterial, KeySet, VerificationKey};
use jwt_simple::prelude::{
    Duration, ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, EdDSAPublicKeyLike, HS256Key,
    HS384Key, HS512Key, MACLike, NoCustomClaims, Token, UnixTimeStamp, VerificationOptions,
};
use rsa::signature::Verifier;
use rsa::{pkcs1v15, pss};
use sha2::{Sha256, Sha384, Sha512};

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
}

impl TokenVerifier {
    /// `fetched`: keys from the identity provider, used beside the inline ones.
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        fetched: Option<&KeySet>,
    ) -> Result<VerifiedToken, JwtFailure> {
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
        for set in std::iter::once(&self.keys).chain(fetched) {
            match set.candidates(metadata.key_id(), alg) {
                Ok(keys) => candidates.extend(keys),
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

        let signed = candidates
            .iter()
            .any(|key| signature_valid(key, alg, token, signing_input, &signature, now));
        if !signed {
            return Err(JwtFailure::SignatureInvalid);
        }

        let exp = check_registered(&claims, &self.rules, now)?;
        let kept = claims
            .into_iter()
            .filter(|(name, _)| self.kept_claims.iter().any(|k| k == name))
            .collect();
        Ok(VerifiedToken { exp, claims: kept })
    }
}

fn signature_valid(
    key: &VerificationKey,
    alg: Algorithm,
    token: &str,
    signing_input: &str,
    signature: &[u8],
    now: u64,
) -> bool {
    let message = signing_input.as_bytes();
    match (&key.material, alg) {
        (KeyMaterial::Rsa(public), _) => rsa_valid(public, alg, message, signature),
        (KeyMaterial::Hmac(secret), Algorithm::HS256) => HS256Key::from_bytes(secret)
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        (KeyMaterial::Hmac(secret), Algorithm::HS384) => HS384Key::from_bytes(secret)
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        (KeyMaterial::Hmac(secret), Algorithm::HS512) => HS512Key::from_bytes(secret)
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        (KeyMaterial::P256(public), Algorithm::ES256) => public
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        (KeyMaterial::P384(public), Algorithm::ES384) => public
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        (KeyMaterial::Ed25519(public), Algorithm::EdDSA) => public
            .verify_token::<NoCustomClaims>(token, Some(signature_only(now)))
            .is_ok(),
        // Key choice already matched families; anything else is a mismatch, never a pass.
        _ => false,
    }
}

/// jwt-simple checks the signature and, always, some claims of its own. tollgate checks every
/// claim itself, the same way for every algorithm (exp required, skew default 0), so
/// jwt-simple's time checks are opened wide here: future dates accepted, and a tolerance as
/// large as the clock itself so no expiry can fail. Its other checks are off by default.
fn signature_only(now: u64) -> VerificationOptions {
    VerificationOptions {
        accept_future: true,
        time_tolerance: Some(Duration::from_secs(now)),
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        max_token_length: Some(MAX_TOKEN_BYTES),
        ..VerificationOptions::default()
    }
}

fn rsa_valid(public: &rsa::PublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    let key = public.clone();
    match alg {
        Algorithm::RS256 => pkcs1(
            pkcs1v15::VerifyingKey::<Sha256>::new(key),
            message,
            signature,
        ),
        Algorithm::RS384 => pkcs1(
            pkcs1v15::VerifyingKey::<Sha384>::new(key),
            message,
            signature,
        ),
        Algorithm::RS512 => pkcs1(
            pkcs1v15::VerifyingKey::<Sha512>::new(key),
            message,
            signature,
        ),
        Algorithm::PS256 => pss(pss::VerifyingKey::<Sha256>::new(key), message, signature),
        Algorithm::PS384 => pss(pss::VerifyingKey::<Sha384>::new(key), message, signature),
        Algorithm::PS512 => pss(pss::VerifyingKey::<Sha512>::new(key), message, signature),
        _ => false,
    }
}

/// The crate checks length and range of the signature and compares the whole encoded block.
fn pkcs1(key: impl Verifier<pkcs1v15::Signature>, message: &[u8], signature: &[u8]) -> bool {
    pkcs1v15::Signature::try_from(signature)
        .is_ok_and(|signature| key.verify(message, &signature).is_ok())
}

fn pss(key: impl Verifier<pss::Signature>, message: &[u8], signature: &[u8]) -> bool {
    pss::Signature::try_from(signature)
        .is_ok_and(|signature| key.verify(message, &signature).is_ok())
}
