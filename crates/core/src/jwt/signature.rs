//! Signature checks for every algorithm tollgate accepts, each over what a JWS signs (the ASCII
//! of `header.payload`) and the decoded signature: the token path calls [`valid`], and so do
//! the Wycheproof vectors in `signature/wycheproof.rs`, so those vectors exercise exactly what
//! production runs.
//!
//! - RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, MGF1 with the same hash, salt as long
//!   as the hash): `rsa` 0.10, which checks the signature's length and range and compares the
//!   whole encoded block (README, "JWT": about 3x faster in wasm than jwt-simple's RSA).
//! - ES256, ES384: `p256` / `p384` (the crates jwt-simple verifies with), the signature as JWS
//!   sends it: r || s, each of the curve's length (IEEE P1363), both in 1..n-1. No DER.
//! - EdDSA: Ed25519 with `ed25519-compact` (again jwt-simple's), which refuses a non-canonical
//!   `s`.
//! - HS256/384/512: jwt-simple's HMAC tag, compared with the sent one in constant time.

use super::algorithm::Algorithm;
use super::keys::KeyMaterial;
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, EdDSAPublicKeyLike, HS256Key, HS384Key,
    HS512Key, MACLike,
};
use rsa::signature::Verifier;
use rsa::{pkcs1v15, pss};
use sha2::{Sha256, Sha384, Sha512};

/// True when `signature` is `alg`'s signature of `signing_input` under `key`. A key of another
/// family than the algorithm's never verifies anything (key choice has matched them already).
pub fn valid(key: &KeyMaterial, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
    match (key, alg) {
        (KeyMaterial::Rsa(public), _) => rsa_valid(public, alg, signing_input, signature),
        (KeyMaterial::Hmac(secret), Algorithm::HS256) => ct_codecs::verify(
            &HS256Key::from_bytes(secret).authentication_tag(signing_input),
            signature,
        ),
        (KeyMaterial::Hmac(secret), Algorithm::HS384) => ct_codecs::verify(
            &HS384Key::from_bytes(secret).authentication_tag(signing_input),
            signature,
        ),
        (KeyMaterial::Hmac(secret), Algorithm::HS512) => ct_codecs::verify(
            &HS512Key::from_bytes(secret).authentication_tag(signing_input),
            signature,
        ),
        (KeyMaterial::P256(public), Algorithm::ES256) => {
            let key: &p256::ecdsa::VerifyingKey = public.public_key().as_ref();
            p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok())
        }
        (KeyMaterial::P384(public), Algorithm::ES384) => {
            let key: &p384::ecdsa::VerifyingKey = public.public_key().as_ref();
            p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok())
        }
        (KeyMaterial::Ed25519(public), Algorithm::EdDSA) => {
            let key: &ed25519_compact::PublicKey = EdDSAPublicKeyLike::public_key(public).as_ref();
            ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok())
        }
        _ => false,
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

#[cfg(test)]
mod wycheproof;
