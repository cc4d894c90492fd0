//! RSA signature verification (RS256/384/512, PKCS#1 v1.5; PS256/384/512, PSS) over
//! `crypto-bigint` directly. The key's Montgomery parameters are computed once, when the key is
//! loaded; a verification is then RSAVP1 with the public exponent by plain square-and-multiply
//! (e is public: a constant-time ladder buys nothing, and e = 65537 is 17 products) and a check
//! of the encoded block:
//!
//! - PKCS#1 v1.5 (RFC 8017 §8.2.2): the one expected block `00 01 FF..FF 00 DigestInfo H` is
//!   built and compared whole, so no parser can be fooled (BERserk and kin).
//! - PSS (RFC 8017 §9.1.2): MGF1 with the same hash, salt exactly as long as the hash (what
//!   JWS fixes, RFC 7518 §3.5).
//!
//! Why not the `rsa` crate: it cloned the key per call and runs a windowed exponentiation made
//! for secret exponents; in wasm this path is about 3.5 times as fast (examples/verify_speed.rs).

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, MontyForm, MontyMultiplier, Odd};
use sha2::digest::Digest;
use sha2::{Sha256, Sha384, Sha512};
use std::fmt;

/// The hash of an RSA algorithm, and the padding it goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Pkcs1v15,
    Pss,
}

/// Why `n` and `e` are no usable public key. The texts are those operators have seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    ModulusTooSmall,
    ModulusTooLarge,
    InvalidModulus,
    InvalidExponent,
    PublicExponentTooSmall,
    PublicExponentTooLarge,
}

impl fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ModulusTooSmall => "modulus too small",
            Self::ModulusTooLarge => "modulus too large",
            Self::InvalidModulus => "invalid modulus",
            Self::InvalidExponent => "invalid exponent",
            Self::PublicExponentTooSmall => "public exponent too small",
            Self::PublicExponentTooLarge => "public exponent too large",
        })
    }
}

impl std::error::Error for RsaKeyError {}

/// The largest public exponent accepted (2^33 - 1, as before).
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// A public key ready to verify: Montgomery parameters for `n`, `e`, and `k`, the modulus's
/// length in bytes.
#[derive(Clone)]
pub struct RsaPublicKey {
    params: BoxedMontyParams,
    e: u64,
    /// Bits of `n`.
    bits: usize,
    /// Bytes of `n` (and of every signature).
    k: usize,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.bits)
            .field("e", &self.e)
            .finish()
    }
}

impl RsaPublicKey {
    /// The key of big-endian `n` and `e` (leading zero bytes allowed), with a modulus of
    /// `min_bits..=max_bits`. The checks and their order are those of `rsa` 0.10, which this
    /// replaces, so a refused key is refused with the same words.
    pub fn new(n: &[u8], e: &[u8], min_bits: usize, max_bits: usize) -> Result<Self, RsaKeyError> {
        let (n, e) = (strip(n), strip(e));
        let bits = n
            .first()
            .map_or(0, |&top| 8 * n.len() - top.leading_zeros() as usize);
        if bits < min_bits {
            return Err(RsaKeyError::ModulusTooSmall);
        }
        if bits > max_bits {
            return Err(RsaKeyError::ModulusTooLarge);
        }
        // Both without leading zeros: the longer is the larger, else the first byte that differs.
        let e_not_below_n = (e.len(), e) >= (n.len(), n);
        if e_not_below_n || n.last().is_none_or(|&b| b & 1 == 0) {
            return Err(RsaKeyError::InvalidModulus);
        }
        if e.last().is_none_or(|&b| b & 1 == 0) {
            return Err(RsaKeyError::InvalidExponent);
        }
        let e = exponent(e).ok_or(RsaKeyError::PublicExponentTooLarge)?;
        if e < 2 {
            return Err(RsaKeyError::PublicExponentTooSmall);
        }
        if e > MAX_EXPONENT {
            return Err(RsaKeyError::PublicExponentTooLarge);
        }
        let n = Odd::new(BoxedUint::from_be_slice_vartime(n))
            .into_option()
            .ok_or(RsaKeyError::InvalidModulus)?;
        Ok(Self {
            params: BoxedMontyParams::new(n),
            e,
            bits,
            k: bits.div_ceil(8),
        })
    }

    /// Bits of the modulus.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// True when `signature` is the signature of `message` with this hash and padding.
    pub fn verify(&self, hash: Hash, padding: Padding, message: &[u8], signature: &[u8]) -> bool {
        match hash {
            Hash::Sha256 => self.verify_with::<Sha256>(padding, message, signature),
            Hash::Sha384 => self.verify_with::<Sha384>(padding, message, signature),
            Hash::Sha512 => self.verify_with::<Sha512>(padding, message, signature),
        }
    }

    fn verify_with<D: Digest + DigestInfo>(
        &self,
        padding: Padding,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let Some(em) = self.public_operation(signature) else {
            return false;
        };
        let m_hash = D::digest(message);
        match padding {
            Padding::Pkcs1v15 => pkcs1v15_encoding(D::PREFIX, &m_hash, self.k)
                .is_some_and(|expected| ct_codecs::verify(&expected, &em)),
            Padding::Pss => pss_verify::<D>(&m_hash, &em, self.bits - 1),
        }
    }

    /// RSAVP1 with the length and range checks of RFC 8017 §8.1.2 step 1 and 2: `s^e mod n`
    /// as exactly `k` big-endian bytes, or `None` for a signature of the wrong length or not
    /// below `n`.
    fn public_operation(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        let n = self.params.modulus();
        let s = BoxedUint::from_be_slice(signature, n.bits_precision()).ok()?;
        if s >= *n.as_ref() {
            return None;
        }
        let base = BoxedMontyForm::new(s, &self.params);
        let mut acc = base.clone();
        let mut multiplier = <BoxedMontyForm as MontyForm>::Multiplier::from(&self.params);
        // Left to right over e's bits after the leading one (e ≥ 3, checked at load).
        let top = u64::BITS - 1 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            multiplier.square_assign(&mut acc);
            if (self.e >> bit) & 1 == 1 {
                multiplier.mul_assign(&mut acc, &base);
            }
        }
        let bytes = acc.retrieve().to_be_bytes();
        // The result is below n, so the bytes above k are zero.
        let (high, em) = bytes.split_at(bytes.len().checked_sub(self.k)?);
        high.iter().all(|&b| b == 0).then(|| em.to_vec())
    }
}

/// The number without its leading zero bytes.
fn strip(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// Big-endian bytes (no leading zeros) as a u64, if they fit.
fn exponent(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0, |e, &b| (e << 8) | u64::from(b)))
}

/// The DER DigestInfo prefix of each hash (RFC 8017 §9.2, note 1): the algorithm identifier
/// with its NULL parameter, then the digest's OCTET STRING header.
trait DigestInfo {
    const PREFIX: &'static [u8];
}

impl DigestInfo for Sha256 {
    const PREFIX: &'static [u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
}

impl DigestInfo for Sha384 {
    const PREFIX: &'static [u8] = &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
        0x05, 0x00, 0x04, 0x30,
    ];
}

impl DigestInfo for Sha512 {
    const PREFIX: &'static [u8] = &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
        0x05, 0x00, 0x04, 0x40,
    ];
}

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2): `00 01 FF..FF 00 prefix hash`, `k` bytes, at least
/// eight bytes of FF.
fn pkcs1v15_encoding(prefix: &[u8], hash: &[u8], k: usize) -> Option<Vec<u8>> {
    let t_len = prefix.len() + hash.len();
    let padding = k.checked_sub(t_len + 3).filter(|&ps| ps >= 8)?;
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + padding, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(hash);
    Some(em)
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) of the `k`-byte `em` for a modulus of `em_bits + 1`
/// bits, salt length = hash length.
fn pss_verify<D: Digest>(m_hash: &[u8], em: &[u8], em_bits: usize) -> bool {
    let h_len = <D as Digest>::output_size();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    // EM is emLen bytes; with a modulus of 8j + 1 bits it is one byte shorter than k, and
    // the byte dropped must be zero (I2OSP to emLen fails otherwise).
    let Some(extra) = em.len().checked_sub(em_len) else {
        return false;
    };
    let (dropped, em) = em.split_at(extra);
    if dropped.iter().any(|&b| b != 0) {
        return false;
    }
    // Step 3 and 4.
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    // Step 5: maskedDB, then H.
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let Some(h) = rest.get(..h_len) else {
        return false;
    };
    // Step 6: the bits above emBits must be zero.
    let unused = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(unused as u32).unwrap_or(0);
    if masked_db.first().is_none_or(|&b| b & !top_mask != 0) {
        return false;
    }
    // Step 7 to 9: DB = maskedDB xor MGF1(H), top bits cleared.
    let mut db = masked_db.to_vec();
    mgf1_xor::<D>(&mut db, h);
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // Step 10: zeros, then 01, then the salt.
    let zeros = em_len - h_len - s_len - 2;
    let (padding, tail) = db.split_at(zeros);
    let Some((&separator, salt)) = tail.split_first() else {
        return false;
    };
    if padding.iter().any(|&b| b != 0) || separator != 0x01 {
        return false;
    }
    // Step 12 to 14: H' = Hash(00 x 8 || mHash || salt) must be H.
    let mut hasher = D::new();
    hasher.update([0u8; 8]);
    hasher.update(m_hash);
    hasher.update(salt);
    ct_codecs::verify(&hasher.finalize(), h)
}

/// `out ^= MGF1(seed)` over `out.len()` bytes (RFC 8017 B.2.1).
fn mgf1_xor<D: Digest>(out: &mut [u8], seed: &[u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(<D as Digest>::output_size())) {
        let mut hasher = D::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        for (byte, mask) in chunk.iter_mut().zip(hasher.finalize().iter()) {
            *byte ^= mask;
        }
    }
}

#[cfg(test)]
mod tests;
