//! Signing keys: a JSON Web Key Set parsed once at configure time into ready-to-use public keys,
//! and the choice of key for a token (by `kid`, and by algorithm family). A set that cannot be
//! used is refused with a [`JwksError`] naming the key and, as a [`JwkError`], what is wrong.
//! (A fetched set is more forgiving: see `fetched.rs`.)

use super::algorithm::{Algorithm, KeyFamily};
use super::rsa::{RsaKeyError, RsaPublicKey};
use crate::config::{JwkConfig, JwksConfig};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use p256::elliptic_curve::point::AffineCoordinates;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;

/// RSA moduli below 2048 bits are refused at load (NIST SP 800-131A); Entra ID uses 2048.
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;
/// HMAC secrets shorter than this (256 bits) are refused at load (RFC 7518, section 3.2).
pub const MIN_HMAC_BYTES: usize = 32;

/// Why a JSON Web Key Set cannot be used. `Display` is the message for the place
/// [`JwksError::path`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// The key at `index` of `keys` cannot be used.
    Key {
        /// Its position in the set's `keys`, counting the encryption keys that are skipped.
        index: usize,
        /// What is wrong with it.
        error: JwkError,
    },
    /// No key is left once encryption keys are set aside.
    NoSigningKey,
}

impl JwksError {
    /// Where the problem is, below `at`, the path of the set (`jwt.jwks.keys[3]`,
    /// `jwt.jwks.keys`).
    pub fn path(&self, at: &str) -> String {
        match self {
            Self::Key { index, .. } => format!("{at}.keys[{index}]"),
            Self::NoSigningKey => format!("{at}.keys"),
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key { error, .. } => error.fmt(f),
            Self::NoSigningKey => f.write_str("must hold at least one signing key"),
        }
    }
}

impl std::error::Error for JwksError {}

/// An elliptic curve a JWK of type `EC` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    /// `P-256`, for ES256.
    P256,
    /// `P-384`, for ES384.
    P384,
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        })
    }
}

/// Why one JSON Web Key cannot verify signatures. `Display` is the operator-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwkError {
    /// A member the key type needs (`n`, `e`, `x`, `y`, `k`) is absent.
    MissingMember {
        /// The member's name.
        name: &'static str,
    },
    /// A member is not base64url.
    NotBase64Url {
        /// The member's name.
        name: &'static str,
    },
    /// A member decodes to no bytes.
    EmptyMember {
        /// The member's name.
        name: &'static str,
    },
    /// `alg` names no signing algorithm tollgate supports.
    UnsupportedAlgorithm {
        /// The `alg` as given.
        alg: String,
    },
    /// `kty` is none of `RSA`, `EC`, `OKP`, `oct`.
    UnsupportedKeyType {
        /// The `kty` as given.
        kty: String,
    },
    /// An `EC` key's `crv` is neither `P-256` nor `P-384`.
    UnsupportedEcCurve {
        /// The `crv` as given, if any.
        crv: Option<String>,
    },
    /// An `OKP` key's `crv` is not `Ed25519`.
    UnsupportedOkpCurve {
        /// The `crv` as given, if any.
        crv: Option<String>,
    },
    /// `x` and `y` do not have the curve's coordinate length.
    WrongPointLength,
    /// `x` and `y` are not a point on the curve.
    NotOnCurve {
        /// The curve the key names.
        curve: EcCurve,
    },
    /// An `OKP` key's `x` is not an Ed25519 public key.
    NotEd25519,
    /// An `oct` key's `k` is shorter than [`MIN_HMAC_BYTES`].
    HmacKeyTooShort,
    /// `n` and `e` are no RSA public key, or the modulus is outside [`MIN_RSA_BITS`] to
    /// [`MAX_RSA_BITS`].
    UnusableRsaKey(RsaKeyError),
    /// `alg` names an algorithm of another family than `kty`.
    AlgorithmDoesNotFitKeyType {
        /// The key's `alg`.
        alg: Algorithm,
        /// The key's `kty`.
        kty: String,
    },
    /// An `oct` key (an HMAC secret) in a fetched set: a public endpoint never supplies one.
    SymmetricKeyFetched,
    /// An entry of a fetched set's `keys` that is no JWK object (no `kty`, a member that is
    /// not a string).
    NotAKey,
}

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingMember { name } => write!(f, "missing '{name}'"),
            Self::NotBase64Url { name } => write!(f, "{name}: not base64url"),
            Self::EmptyMember { name } => write!(f, "{name}: empty"),
            Self::UnsupportedAlgorithm { alg } => {
                write!(f, "alg '{alg}' is not a supported signing algorithm")
            }
            Self::UnsupportedKeyType { kty } => {
                write!(f, "kty '{kty}' is not supported (RSA, EC, OKP or oct)")
            }
            Self::UnsupportedEcCurve { crv } => write!(
                f,
                "crv {crv:?} is not supported (P-256 for ES256, P-384 for ES384)"
            ),
            Self::UnsupportedOkpCurve { crv } => {
                write!(f, "crv {crv:?} is not supported (Ed25519 only)")
            }
            Self::WrongPointLength => f.write_str("x, y: wrong length for the curve"),
            Self::NotOnCurve { curve } => write!(f, "x, y: not a point on {curve}"),
            Self::NotEd25519 => f.write_str("x: not an Ed25519 public key"),
            Self::HmacKeyTooShort => write!(
                f,
                "k: an HMAC key must be at least {MIN_HMAC_BYTES} bytes ({} bits)",
                MIN_HMAC_BYTES * 8
            ),
            Self::UnusableRsaKey(err) => write!(
                f,
                "not a usable RSA public key ({err}; modulus {MIN_RSA_BITS} to {MAX_RSA_BITS} bits)"
            ),
            Self::AlgorithmDoesNotFitKeyType { alg, kty } => {
                write!(f, "alg '{}' does not fit a key of type '{kty}'", alg.name())
            }
            Self::SymmetricKeyFetched => {
                f.write_str("kty 'oct' (an HMAC secret) is never taken from a key endpoint")
            }
            Self::NotAKey => {
                f.write_str("not a JSON Web Key (kty and every member must be strings)")
            }
        }
    }
}

impl std::error::Error for JwkError {}

pub enum KeyMaterial {
    Hmac(Vec<u8>),
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_compact::PublicKey),
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

/// What makes a key the same key in the next fetched set: a SHA-256 over its `kid`, `alg`, type
/// and public numbers. A cached token stays verified only while its key's identity is in the set.
pub type KeyIdentity = [u8; 32];

pub struct VerificationKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key then verifies only that algorithm.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
    pub identity: KeyIdentity,
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
    /// Which fetch made the set (0 for the inline set): a cache entry bound to this generation
    /// needs no further look.
    generation: u64,
    identities: HashSet<KeyIdentity>,
}

impl KeySet {
    /// Parses a JWKS; an error names the key by its index ([`JwksError::path`]).
    pub fn from_jwks(jwks: &JwksConfig) -> Result<Self, JwksError> {
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for (index, jwk) in jwks.keys.iter().enumerate() {
            if !for_signing(jwk) {
                continue;
            }
            keys.push(parse_jwk(jwk).map_err(|error| JwksError::Key { index, error })?);
        }
        if keys.is_empty() {
            return Err(JwksError::NoSigningKey);
        }
        Ok(Self::new(keys, 0))
    }

    /// A set of parsed keys, as fetch number `generation` brought them.
    pub(super) fn new(keys: Vec<VerificationKey>, generation: u64) -> Self {
        let identities = keys.iter().map(|key| key.identity).collect();
        Self {
            keys,
            generation,
            identities,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a key with this identity is in the set.
    pub fn holds(&self, identity: &KeyIdentity) -> bool {
        self.identities.contains(identity)
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

/// A key published for encryption (`use: enc`) never verifies a signature: it is left out.
pub(super) fn for_signing(jwk: &JwkConfig) -> bool {
    jwk.key_use.as_deref() != Some("enc")
}

pub(super) fn parse_jwk(jwk: &JwkConfig) -> Result<VerificationKey, JwkError> {
    let alg = match &jwk.alg {
        None => None,
        Some(name) => Some(
            Algorithm::parse(name)
                .ok_or_else(|| JwkError::UnsupportedAlgorithm { alg: name.clone() })?,
        ),
    };
    // The public numbers, hashed into the key's identity.
    let mut numbers: Vec<Vec<u8>> = Vec::new();
    let material = match jwk.kty.as_str() {
        "RSA" => {
            let n = field(&jwk.n, "n")?;
            let e = field(&jwk.e, "e")?;
            let key = rsa_key(&n, &e)?;
            numbers = vec![n, e];
            key
        }
        "EC" => {
            let x = field(&jwk.x, "x")?;
            let y = field(&jwk.y, "y")?;
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            numbers.push(point.clone());
            match jwk.crv.as_deref() {
                Some("P-256") if x.len() == 32 && y.len() == 32 => {
                    KeyMaterial::P256(p256_key(&x, &y).ok_or(JwkError::NotOnCurve {
                        curve: EcCurve::P256,
                    })?)
                }
                Some("P-384") if x.len() == 48 && y.len() == 48 => {
                    KeyMaterial::P384(p384_key(&x, &y).ok_or(JwkError::NotOnCurve {
                        curve: EcCurve::P384,
                    })?)
                }
                Some("P-256" | "P-384") => return Err(JwkError::WrongPointLength),
                other => {
                    return Err(JwkError::UnsupportedEcCurve {
                        crv: other.map(str::to_string),
                    })
                }
            }
        }
        "OKP" => match jwk.crv.as_deref() {
            Some("Ed25519") => {
                let x = field(&jwk.x, "x")?;
                // A small-order point (a weak key) is refused too.
                let key = ed25519_compact::PublicKey::from_slice(&x)
                    .and_then(|key| key.validate().map(|()| key))
                    .map_err(|_| JwkError::NotEd25519)?;
                numbers.push(x);
                KeyMaterial::Ed25519(key)
            }
            other => {
                return Err(JwkError::UnsupportedOkpCurve {
                    crv: other.map(str::to_string),
                })
            }
        },
        "oct" => {
            let k = field(&jwk.k, "k")?;
            if k.len() < MIN_HMAC_BYTES {
                return Err(JwkError::HmacKeyTooShort);
            }
            // Inline keys never leave their set, so the secret need not be in the identity.
            KeyMaterial::Hmac(k)
        }
        other => {
            return Err(JwkError::UnsupportedKeyType {
                kty: other.to_string(),
            })
        }
    };
    let identity = key_identity(jwk, &numbers);
    let key = VerificationKey {
        kid: jwk.kid.clone(),
        alg,
        material,
        identity,
    };
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(JwkError::AlgorithmDoesNotFitKeyType {
                alg,
                kty: jwk.kty.clone(),
            });
        }
    }
    Ok(key)
}

/// SHA-256 over `kid`, `alg`, `kty`, `crv` and the public numbers, each length-prefixed so no
/// two different keys hash the same input.
fn key_identity(jwk: &JwkConfig, numbers: &[Vec<u8>]) -> KeyIdentity {
    let mut hasher = Sha256::new();
    let texts = [
        jwk.kid.as_deref(),
        jwk.alg.as_deref(),
        Some(jwk.kty.as_str()),
        jwk.crv.as_deref(),
    ];
    for text in texts {
        let bytes = text.map_or(&[][..], str::as_bytes);
        hasher.update([u8::from(text.is_some())]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    for number in numbers {
        hasher.update((number.len() as u64).to_be_bytes());
        hasher.update(number);
    }
    hasher.finalize().into()
}

fn field(value: &Option<String>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let text = value.as_deref().ok_or(JwkError::MissingMember { name })?;
    let bytes = base64url(text).ok_or(JwkError::NotBase64Url { name })?;
    if bytes.is_empty() {
        return Err(JwkError::EmptyMember { name });
    }
    Ok(bytes)
}

/// Base64url without padding (RFC 7515); trailing `=` is tolerated, as some publishers add it.
pub fn base64url(text: &str) -> Option<Vec<u8>> {
    Base64UrlSafeNoPadding::decode_to_vec(text.trim_end_matches('='), None).ok()
}

// From the affine coordinates rather than SEC1 bytes, which could also be a compressed point:
// the checks are the same (each coordinate below p, the point on the curve, not the identity)
// and point decompression (a square root per curve) stays out of the module.
fn p256_key(x: &[u8], y: &[u8]) -> Option<p256::ecdsa::VerifyingKey> {
    let (x, y) = (x.try_into().ok()?, y.try_into().ok()?);
    let point = p256::AffinePoint::from_coordinates(&x, &y).into_option()?;
    p256::ecdsa::VerifyingKey::from_affine(point).ok()
}

fn p384_key(x: &[u8], y: &[u8]) -> Option<p384::ecdsa::VerifyingKey> {
    let (x, y) = (x.try_into().ok()?, y.try_into().ok()?);
    let point = p384::AffinePoint::from_coordinates(&x, &y).into_option()?;
    p384::ecdsa::VerifyingKey::from_affine(point).ok()
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<KeyMaterial, JwkError> {
    RsaPublicKey::new(n, e, MIN_RSA_BITS, MAX_RSA_BITS)
        .map(KeyMaterial::Rsa)
        .map_err(JwkError::UnusableRsaKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(kty: &str) -> JwkConfig {
        serde_json::from_value(serde_json::json!({ "kty": kty })).unwrap()
    }

    #[test]
    fn jwks_errors_name_the_same_place_and_say_the_same_as_ever() {
        let key = JwksError::Key {
            index: 3,
            error: JwkError::MissingMember { name: "e" },
        };
        assert_eq!(key.path("jwt.jwks"), "jwt.jwks.keys[3]");
        assert_eq!(key.to_string(), "missing 'e'");
        assert_eq!(JwksError::NoSigningKey.path("jwks"), "jwks.keys");
        assert_eq!(
            JwksError::NoSigningKey.to_string(),
            "must hold at least one signing key"
        );
    }

    #[test]
    fn jwk_errors_say_the_same_as_ever() {
        for (error, text) in [
            (JwkError::NotBase64Url { name: "n" }, "n: not base64url"),
            (JwkError::EmptyMember { name: "k" }, "k: empty"),
            (
                JwkError::UnsupportedAlgorithm {
                    alg: "ES512".into(),
                },
                "alg 'ES512' is not a supported signing algorithm",
            ),
            (
                JwkError::UnsupportedKeyType { kty: "DSA".into() },
                "kty 'DSA' is not supported (RSA, EC, OKP or oct)",
            ),
            (
                JwkError::UnsupportedEcCurve {
                    crv: Some("P-521".into()),
                },
                "crv Some(\"P-521\") is not supported (P-256 for ES256, P-384 for ES384)",
            ),
            (
                JwkError::UnsupportedOkpCurve { crv: None },
                "crv None is not supported (Ed25519 only)",
            ),
            (
                JwkError::WrongPointLength,
                "x, y: wrong length for the curve",
            ),
            (
                JwkError::NotOnCurve {
                    curve: EcCurve::P384,
                },
                "x, y: not a point on P-384",
            ),
            (JwkError::NotEd25519, "x: not an Ed25519 public key"),
            (
                JwkError::HmacKeyTooShort,
                "k: an HMAC key must be at least 32 bytes (256 bits)",
            ),
            (
                JwkError::UnusableRsaKey(RsaKeyError::ModulusTooSmall),
                "not a usable RSA public key (modulus too small; modulus 2048 to 8192 bits)",
            ),
            (
                JwkError::AlgorithmDoesNotFitKeyType {
                    alg: Algorithm::ES256,
                    kty: "RSA".into(),
                },
                "alg 'ES256' does not fit a key of type 'RSA'",
            ),
            (
                JwkError::SymmetricKeyFetched,
                "kty 'oct' (an HMAC secret) is never taken from a key endpoint",
            ),
            (
                JwkError::NotAKey,
                "not a JSON Web Key (kty and every member must be strings)",
            ),
        ] {
            assert_eq!(error.to_string(), text, "{error:?}");
        }
    }

    #[test]
    fn parse_reports_typed_errors() {
        assert_eq!(
            parse_jwk(&jwk("DSA")).err(),
            Some(JwkError::UnsupportedKeyType { kty: "DSA".into() })
        );
        assert_eq!(
            parse_jwk(&jwk("RSA")).err(),
            Some(JwkError::MissingMember { name: "n" })
        );
        let mut short = jwk("RSA");
        short.n = Some("AQAB".into());
        short.e = Some("AQAB".into());
        assert_eq!(
            parse_jwk(&short).err(),
            Some(JwkError::UnusableRsaKey(RsaKeyError::ModulusTooSmall))
        );
    }

    /// A point off the curve, a coordinate not below p, and the identity are no EC keys.
    #[test]
    fn ec_points_are_checked() {
        use crate::testing::tokens::b64;
        // P-256's generator, then P-384's.
        let g256 = (
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        );
        let g384 = (
            "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
            "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
        );
        let hex = |text: &str| -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        for (crv, (x, y), curve) in [
            ("P-256", g256, EcCurve::P256),
            ("P-384", g384, EcCurve::P384),
        ] {
            let key = |x: &[u8], y: &[u8]| {
                let mut jwk = jwk("EC");
                jwk.crv = Some(crv.into());
                jwk.x = Some(b64(x));
                jwk.y = Some(b64(y));
                parse_jwk(&jwk).err()
            };
            let (x, y) = (hex(x), hex(y));
            assert_eq!(key(&x, &y), None, "{crv}");
            let mut off = y.clone();
            *off.last_mut().unwrap() ^= 1;
            assert_eq!(key(&x, &off), Some(JwkError::NotOnCurve { curve }));
            let zeros = vec![0; x.len()];
            assert_eq!(key(&zeros, &zeros), Some(JwkError::NotOnCurve { curve }));
            let ones = vec![0xff; x.len()];
            assert_eq!(key(&ones, &y), Some(JwkError::NotOnCurve { curve }));
            assert_eq!(key(&x[1..], &y[1..]), Some(JwkError::WrongPointLength));
        }
    }
}
