//! Signing keys: a JSON Web Key Set parsed once at configure time into ready-to-use public keys,
//! and the choice of key for a token (by `kid`, and by algorithm family).

use super::algorithm::{Algorithm, KeyFamily};
use crate::config::{JwkConfig, JwksConfig};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::{ES256PublicKey, ES384PublicKey, Ed25519PublicKey};
use rsa::{BoxedUint, PublicKey as RsaPublicKey};

/// RSA moduli below 2048 bits are refused at load (NIST SP 800-131A); Entra ID uses 2048.
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;

pub enum KeyMaterial {
    Hmac(Vec<u8>),
    Rsa(RsaPublicKey),
    P256(ES256PublicKey),
    P384(ES384PublicKey),
    Ed25519(Ed25519PublicKey),
}

impl KeyMaterial {
    pub fn family(&self) -> KeyFamily {
        match self {
            KeyMaterial::Hmac(_) => KeyFamily::Hmac,
            KeyMaterial::Rsa(_) => KeyFamily::Rsa,
            KeyMaterial::P256(_) => KeyFamily::P256,
            KeyMaterial::P384(_) => KeyFamily::P384,
            KeyMaterial::Ed25519(_) => KeyFamily::Ed25519,
        }
    }
}

pub struct VerificationKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key then verifies only that algorithm.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
}

impl VerificationKey {
    fn fits(&self, alg: Algorithm) -> bool {
        self.material.family() == alg.family() && self.alg.is_none_or(|own| own == alg)
    }
}

impl std::fmt::Debug for VerificationKey {
    // Never print key material (an HMAC secret is a secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.material.family())
            .finish()
    }
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoiceError {
    /// No key has the token's `kid` (or, without `kid`, none fits its algorithm).
    NotFound,
    /// The `kid` names a key of another family or algorithm.
    AlgorithmMismatch,
}

#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// Parses a JWKS. `at` is the configuration path of the set, for messages.
    pub fn from_jwks(jwks: &JwksConfig, at: &str) -> Result<Self, (String, String)> {
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for (index, jwk) in jwks.keys.iter().enumerate() {
            let key_at = format!("{at}.keys[{index}]");
            // A key published for encryption never verifies a signature.
            if jwk.key_use.as_deref() == Some("enc") {
                continue;
            }
            keys.push(parse_jwk(jwk).map_err(|message| (key_at, message))?);
        }
        if keys.is_empty() {
            return Err((
                format!("{at}.keys"),
                "must hold at least one signing key".to_string(),
            ));
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys a token with this `kid` and algorithm may be verified with, in set order.
    pub fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<&VerificationKey>, KeyChoiceError> {
        match kid {
            Some(kid) => {
                let named: Vec<&VerificationKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(KeyChoiceError::NotFound);
                }
                let fitting: Vec<&VerificationKey> =
                    named.into_iter().filter(|k| k.fits(alg)).collect();
                if fitting.is_empty() {
                    Err(KeyChoiceError::AlgorithmMismatch)
                } else {
                    Ok(fitting)
                }
            }
            None => {
                let fitting: Vec<&VerificationKey> =
                    self.keys.iter().filter(|k| k.fits(alg)).collect();
                if fitting.is_empty() {
                    Err(KeyChoiceError::NotFound)
                } else {
                    Ok(fitting)
                }
            }
        }
    }
}

fn parse_jwk(jwk: &JwkConfig) -> Result<VerificationKey, String> {
    let alg = match &jwk.alg {
        None => None,
        Some(name) => Some(
            Algorithm::parse(name)
                .ok_or_else(|| format!("alg '{name}' is not a supported signing algorithm"))?,
        ),
    };
    let material = match jwk.kty.as_str() {
        "RSA" => {
            let n = field(&jwk.n, "n")?;
            let e = field(&jwk.e, "e")?;
            rsa_key(&n, &e)?
        }
        "EC" => {
            let x = field(&jwk.x, "x")?;
            let y = field(&jwk.y, "y")?;
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            match jwk.crv.as_deref() {
                Some("P-256") if x.len() == 32 && y.len() == 32 => KeyMaterial::P256(
                    ES256PublicKey::from_bytes(&point)
                        .map_err(|_| "x, y: not a point on P-256".to_string())?,
                ),
                Some("P-384") if x.len() == 48 && y.len() == 48 => KeyMaterial::P384(
                    ES384PublicKey::from_bytes(&point)
                        .map_err(|_| "x, y: not a point on P-384".to_string())?,
                ),
                Some("P-256" | "P-384") => {
                    return Err("x, y: wrong length for the curve".to_string())
                }
                other => {
                    return Err(format!(
                        "crv {other:?} is not supported (P-256 for ES256, P-384 for ES384)"
                    ))
                }
            }
        }
        "OKP" => match jwk.crv.as_deref() {
            Some("Ed25519") => {
                let x = field(&jwk.x, "x")?;
                KeyMaterial::Ed25519(
                    Ed25519PublicKey::from_bytes(&x)
                        .map_err(|_| "x: not an Ed25519 public key".to_string())?,
                )
            }
            other => return Err(format!("crv {other:?} is not supported (Ed25519 only)")),
        },
        "oct" => {
            let k = field(&jwk.k, "k")?;
            if k.len() < 32 {
                return Err("k: an HMAC key must be at least 32 bytes (256 bits)".to_string());
            }
            KeyMaterial::Hmac(k)
        }
        other => {
            return Err(format!(
                "kty '{other}' is not supported (RSA, EC, OKP or oct)"
            ))
        }
    };
    let key = VerificationKey {
        kid: jwk.kid.clone(),
        alg,
        material,
    };
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(format!(
                "alg '{}' does not fit a key of type '{}'",
                jwk.alg.as_deref().unwrap_or_default(),
                jwk.kty
            ));
        }
    }
    Ok(key)
}

fn field(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_deref()
        .ok_or_else(|| format!("missing '{name}'"))?;
    let bytes = base64url(text).ok_or_else(|| format!("{name}: not base64url"))?;
    if bytes.is_empty() {
        return Err(format!("{name}: empty"));
    }
    Ok(bytes)
}

/// Base64url without padding (RFC 7515); trailing `=` is tolerated, as some publishers add it.
pub fn base64url(text: &str) -> Option<Vec<u8>> {
    Base64UrlSafeNoPadding::decode_to_vec(text.trim_end_matches('='), None).ok()
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<KeyMaterial, String> {
    let n = BoxedUint::from_be_slice_vartime(n);
    let e = BoxedUint::from_be_slice_vartime(e);
    RsaPublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=MAX_RSA_BITS)
        .map(KeyMaterial::Rsa)
        .map_err(|err| {
            format!("not a usable RSA public key ({err}; modulus {MIN_RSA_BITS} to {MAX_RSA_BITS} bits)")
        })
}
