//! Signature checks for every algorithm tollgate accepts, each over what a JWS signs (the ASCII
//! of `header.payload`) and the decoded signature: the token path calls [`valid`], and so do
//! the Wycheproof vectors in `signature/wycheproof.rs`, so those vectors exercise exactly what
//! production runs.
//!
//! - RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, MGF1 with the same hash, salt as long
//!   as the hash): `rsa.rs`, which checks the signature's length and range and compares the
//!   whole encoded block.
//! - ES256, ES384: `p256` / `p384`, the signature as JWS sends it: r || s, each of the curve's
//!   length (IEEE P1363), both in 1..n-1. No DER.
//! - EdDSA: Ed25519 with `ed25519-compact`, which refuses a non-canonical `s`.
//! - HS256/384/512: `hmac` over `sha2`, the tag compared with the sent one in constant time.

use super::algorithm::Algorithm;
use super::keys::KeyMaterial;
use super::rsa::{Hash, Padding, RsaPublicKey};
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Verifier;
use sha2::{Sha256, Sha384, Sha512};

/// True when `signature` is `alg`'s signature of `signing_input` under `key`. A key of another
/// family than the algorithm's never verifies anything (key choice has matched them already).
pub fn valid(key: &KeyMaterial, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
    match (key, alg) {
        (KeyMaterial::Rsa(public), _) => rsa_valid(public, alg, signing_input, signature),
        (KeyMaterial::Hmac(secret), Algorithm::HS256) => {
            hmac_valid::<Hmac<Sha256>>(secret, signing_input, signature)
        }
        (KeyMaterial::Hmac(secret), Algorithm::HS384) => {
            hmac_valid::<Hmac<Sha384>>(secret, signing_input, signature)
        }
        (KeyMaterial::Hmac(secret), Algorithm::HS512) => {
            hmac_valid::<Hmac<Sha512>>(secret, signing_input, signature)
        }
        (KeyMaterial::P256(key), Algorithm::ES256) => p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok()),
        (KeyMaterial::P384(key), Algorithm::ES384) => p384::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok()),
        (KeyMaterial::Ed25519(key), Algorithm::EdDSA) => {
            ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(signing_input, &signature).is_ok())
        }
        _ => false,
    }
}

fn rsa_valid(key: &RsaPublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    let (hash, padding) = match alg {
        Algorithm::RS256 => (Hash::Sha256, Padding::Pkcs1v15),
        Algorithm::RS384 => (Hash::Sha384, Padding::Pkcs1v15),
        Algorithm::RS512 => (Hash::Sha512, Padding::Pkcs1v15),
        Algorithm::PS256 => (Hash::Sha256, Padding::Pss),
        Algorithm::PS384 => (Hash::Sha384, Padding::Pss),
        Algorithm::PS512 => (Hash::Sha512, Padding::Pss),
        _ => return false,
    };
    key.verify(hash, padding, message, signature)
}

/// The tag of `message` under `secret`, compared with `tag` in constant time (a tag of another
/// length never matches).
fn hmac_valid<M: Mac + KeyInit>(secret: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(message);
    ct_codecs::verify(&mac.finalize().into_bytes(), tag)
}

#[cfg(test)]
mod wycheproof;
