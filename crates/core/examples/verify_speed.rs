//! Signature verification speed, one line per algorithm: µs per verify of a valid Wycheproof
//! vector, key loaded once (as tollgate loads keys at configure time or when a fetched set is
//! accepted). Meant for wasm under V8, as Envoy runs the filter:
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p tollgate-core --example verify_speed
//! node --no-liftoff crates/core/examples/verify_speed.mjs \
//!     target/wasm32-wasip1/release/examples/verify_speed.wasm [rounds]
//! ```
//!
//! Natively: `cargo run --release -p tollgate-core --example verify_speed [rounds]`.
//! Not a test: no timing is asserted anywhere.

use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;
use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

// The filter's own RSA code, compiled in here (the crate keeps its modules private).
#[allow(dead_code)]
#[path = "../src/jwt/rsa.rs"]
mod rsa;

use rsa::{Hash, Padding, RsaPublicKey};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const RSA_2048: &str = include_str!("../tests/data/wycheproof/rsa_signature_2048_sha256_test.json");
const RSA_4096: &str = include_str!("../tests/data/wycheproof/rsa_signature_4096_sha256_test.json");
const PSS_2048: &str =
    include_str!("../tests/data/wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json");
const P256: &str = include_str!("../tests/data/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json");
const ED25519: &str = include_str!("../tests/data/wycheproof/ed25519_test.json");

fn hex(text: &str) -> Result<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2).ok_or("odd hex")?;
            Ok(u8::from_str_radix(pair, 16)?)
        })
        .collect()
}

fn text<'a>(value: &'a Value, name: &str) -> Result<&'a str> {
    value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {name}").into())
}

/// The first group's public key and its first valid case (message, signature).
struct Vector {
    key: Value,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn first_valid(file: &str) -> Result<Vector> {
    let doc: Value = serde_json::from_str(file)?;
    let group = doc.pointer("/testGroups/0").ok_or("no test group")?.clone();
    let case = group
        .get("tests")
        .and_then(Value::as_array)
        .and_then(|tests| {
            tests
                .iter()
                .find(|t| t.get("result") == Some(&"valid".into()))
        })
        .ok_or("no valid case")?;
    Ok(Vector {
        key: group.get("publicKey").ok_or("no publicKey")?.clone(),
        message: hex(text(case, "msg")?)?,
        signature: hex(text(case, "sig")?)?,
    })
}

/// µs per call of `verify` (which must say true): the best and the median of batches of ten.
/// The machine is shared; the best batch is the one least disturbed.
fn time(rounds: u32, mut verify: impl FnMut() -> bool) -> Result<String> {
    if !verify() {
        return Err("the vector does not verify".into());
    }
    const BATCH: u32 = 10;
    let mut batches: Vec<f64> = (0..rounds.div_ceil(BATCH).max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                black_box(verify());
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    let best = batches.first().copied().unwrap_or_default();
    let median = batches.get(batches.len() / 2).copied().unwrap_or_default();
    Ok(format!("{best:.1} µs/verify (median {median:.1})"))
}

fn rsa_line(name: &str, file: &str, padding: Padding, rounds: u32) -> Result<()> {
    let vector = first_valid(file)?;
    let n = hex(text(&vector.key, "modulus")?)?;
    let e = hex(text(&vector.key, "publicExponent")?)?;
    let key = RsaPublicKey::new(&n, &e, 2048, 8192)?;
    let us = time(rounds, || {
        key.verify(
            Hash::Sha256,
            padding,
            black_box(&vector.message),
            black_box(&vector.signature),
        )
    })?;
    println!("{name} ({} bits): {us}", key.bits());
    Ok(())
}

fn main() -> Result<()> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    println!(
        "{} limbs of {} bits, {rounds} rounds",
        std::env::consts::ARCH,
        crypto_bigint::Limb::BITS
    );

    rsa_line("RS256", RSA_2048, Padding::Pkcs1v15, rounds)?;
    rsa_line("PS256", PSS_2048, Padding::Pss, rounds)?;
    rsa_line("RS256", RSA_4096, Padding::Pkcs1v15, rounds / 4)?;

    let vector = first_valid(P256)?;
    let point = [
        &[0x04][..],
        &coordinate(&hex(text(&vector.key, "wx")?)?, 32)?,
        &coordinate(&hex(text(&vector.key, "wy")?)?, 32)?,
    ]
    .concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)?;
    let signature = p256::ecdsa::Signature::from_slice(&vector.signature)?;
    let us = time(rounds, || {
        key.verify(black_box(&vector.message), black_box(&signature))
            .is_ok()
    })?;
    println!("ES256: {us}");

    let vector = first_valid(ED25519)?;
    let key = ed25519_compact::PublicKey::from_slice(&hex(text(&vector.key, "pk")?)?)?;
    let signature = ed25519_compact::Signature::from_slice(&vector.signature)?;
    let us = time(rounds, || {
        key.verify(black_box(&vector.message), black_box(&signature))
            .is_ok()
    })?;
    println!("EdDSA: {us}");

    // HS256 over a signing input of a typical Entra token's size.
    let secret = [7u8; 32];
    let message = vec![b'a'; 1200];
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)?;
    mac.update(&message);
    let tag = mac.finalize().into_bytes();
    let us = time(rounds * 20, || {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).is_ok_and(|mut mac| {
            mac.update(black_box(&message));
            ct_codecs::verify(&mac.finalize().into_bytes(), black_box(&tag))
        })
    })?;
    println!("HS256 (1200 bytes): {us}");
    Ok(())
}

/// A coordinate as exactly `len` bytes (Wycheproof adds a zero byte when the top bit is set).
fn coordinate(bytes: &[u8], len: usize) -> Result<Vec<u8>> {
    let trimmed = bytes
        .get(bytes.len().saturating_sub(len)..)
        .ok_or("coordinate")?;
    let mut out = vec![0; len - trimmed.len()];
    out.extend_from_slice(trimmed);
    Ok(out)
}
