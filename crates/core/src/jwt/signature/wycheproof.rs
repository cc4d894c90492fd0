//! Every Wycheproof vector for the signature algorithms tollgate accepts, run through the
//! filter's own path: the vector's public key is loaded as a JWK by `KeySet::from_jwks` (as a
//! configured or fetched key is), chosen by `candidates` for the algorithm, and the signature
//! checked by `signature::valid`, the function token verification calls. The vectors
//! (C2SP/wycheproof, Apache-2.0) are in `tests/data/wycheproof/` with their licence and source.
//!
//! Verdicts: `valid` must be accepted and `invalid` refused. `acceptable` is a case a
//! verifier may go either way on; tollgate's choice is written down per flag in
//! [`acceptable_verdict`], and a flag not listed there fails the run until someone decides.
//! No HMAC vectors are among these files (Wycheproof has MAC vectors, but none were copied):
//! HS256/384/512 are covered by the unit tests with real tokens.

use super::valid;
use crate::config::JwksConfig;
use crate::jwt::algorithm::Algorithm;
use crate::jwt::keys::KeySet;
use crate::testing::tokens::b64;
use serde_json::{json, Value};
use std::path::Path;

/// How tollgate answers each `acceptable` flag of these files (true = accepted).
///
/// - `MissingNull` (RSASSA-PKCS1-v1_5, one case per file): the DigestInfo is encoded without
///   the NULL parameter of the hash algorithm, as some legacy signers did. Refused: `rsa.rs`
///   builds the one expected encoding (with the NULL) and compares the whole block, so an
///   alternative encoding never verifies — no signer a JWT meets omits it.
fn acceptable_verdict(flags: &[String]) -> Option<bool> {
    match flags {
        [flag] if flag == "MissingNull" => Some(false),
        _ => None,
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A big-endian unsigned integer without its leading zero bytes.
fn minimal(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().skip_while(|&b| b == 0).collect()
}

/// A big-endian unsigned integer as exactly `len` bytes (Wycheproof writes EC coordinates
/// with a leading zero byte when the top bit is set).
fn fixed(bytes: &[u8], len: usize) -> Vec<u8> {
    let minimal = minimal(bytes);
    assert!(minimal.len() <= len, "coordinate longer than {len} bytes");
    let mut out = vec![0; len - minimal.len()];
    out.extend(minimal);
    out
}

/// The group's public key as the JWK an identity provider would publish.
fn jwk(group: &Value) -> Value {
    let key = &group["publicKey"];
    match key["type"].as_str() {
        Some("EcPublicKey") => {
            let (crv, len) = match key["curve"].as_str() {
                Some("secp256r1") => ("P-256", 32),
                Some("secp384r1") => ("P-384", 48),
                other => panic!("curve {other:?}"),
            };
            let x = fixed(&hex(key["wx"].as_str().unwrap()), len);
            let y = fixed(&hex(key["wy"].as_str().unwrap()), len);
            json!({ "kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y) })
        }
        Some("EDDSAPublicKey") => {
            json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&hex(key["pk"].as_str().unwrap())) })
        }
        // RSA groups name no type in `publicKey`: modulus and exponent, big-endian hex.
        _ => {
            let n = minimal(&hex(key["modulus"].as_str().unwrap()));
            let e = minimal(&hex(key["publicExponent"].as_str().unwrap()));
            json!({ "kty": "RSA", "n": b64(&n), "e": b64(&e) })
        }
    }
}

/// What one file came to.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    cases: usize,
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// Cases whose verdict came out as the file (or `acceptable_verdict`) says.
    right: usize,
    wrong: Vec<String>,
}

fn run(file: &str, alg: Algorithm) -> Tally {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/wycheproof")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut tally = Tally::default();
    for group in doc["testGroups"].as_array().unwrap() {
        // PSS: JWS fixes MGF1 with the signature's hash and a salt as long as the hash; the
        // files chosen are exactly those parameters.
        if group["type"] == "RsassaPssVerify" {
            assert_eq!(group["mgf"], "MGF1", "{file}");
            assert_eq!(group["mgfSha"], group["sha"], "{file}");
        }
        let jwks: JwksConfig = serde_json::from_value(json!({ "keys": [jwk(group)] })).unwrap();
        let keys = KeySet::from_jwks(&jwks);
        for test in group["tests"].as_array().unwrap() {
            tally.cases += 1;
            let id = test["tcId"].as_u64().unwrap();
            let flags: Vec<String> = serde_json::from_value(test["flags"].clone()).unwrap();
            let expected = match test["result"].as_str() {
                Some("valid") => {
                    tally.valid += 1;
                    Some(true)
                }
                Some("invalid") => {
                    tally.invalid += 1;
                    Some(false)
                }
                Some("acceptable") => {
                    tally.acceptable += 1;
                    acceptable_verdict(&flags)
                }
                other => panic!("{file} #{id}: result {other:?}"),
            };
            let message = hex(test["msg"].as_str().unwrap());
            let signature = hex(test["sig"].as_str().unwrap());
            let accepted = match &keys {
                Ok(keys) => keys
                    .candidates(None, alg)
                    .unwrap()
                    .iter()
                    .any(|key| valid(&key.material, alg, &message, &signature)),
                // A key tollgate will not load verifies nothing.
                Err(_) => false,
            };
            match expected {
                Some(expected) if expected == accepted => tally.right += 1,
                Some(expected) => tally.wrong.push(format!(
                    "#{id} {:?} {flags:?}: expected {}, got {}{}",
                    test["comment"],
                    if expected { "accepted" } else { "refused" },
                    if accepted { "accepted" } else { "refused" },
                    keys.as_ref()
                        .err()
                        .map(|e| format!(" (key not loaded: {e})"))
                        .unwrap_or_default(),
                )),
                None => tally.wrong.push(format!(
                    "#{id}: acceptable with flags {flags:?}, which acceptable_verdict does not \
                     decide (tollgate {})",
                    if accepted { "accepts" } else { "refuses" }
                )),
            }
        }
    }
    assert_eq!(
        Some(tally.cases as u64),
        doc["numberOfTests"].as_u64(),
        "{file}: cases run"
    );
    tally
}

fn check(file: &str, alg: Algorithm) -> Tally {
    let tally = run(file, alg);
    println!(
        "{file}: {} cases ({} valid, {} invalid, {} acceptable), {} right",
        tally.cases, tally.valid, tally.invalid, tally.acceptable, tally.right
    );
    assert!(
        tally.wrong.is_empty(),
        "{file} ({}): {} of {} wrong:\n{}",
        alg.name(),
        tally.wrong.len(),
        tally.cases,
        tally.wrong.join("\n")
    );
    tally
}

/// Every file, with the algorithm of the filter its vectors are for.
const FILES: [(&str, Algorithm); 12] = [
    ("rsa_signature_2048_sha256_test.json", Algorithm::RS256),
    ("rsa_signature_3072_sha256_test.json", Algorithm::RS256),
    ("rsa_signature_4096_sha256_test.json", Algorithm::RS256),
    ("rsa_signature_2048_sha384_test.json", Algorithm::RS384),
    ("rsa_signature_2048_sha512_test.json", Algorithm::RS512),
    ("rsa_signature_4096_sha512_test.json", Algorithm::RS512),
    ("rsa_pss_2048_sha256_mgf1_32_test.json", Algorithm::PS256),
    ("rsa_pss_2048_sha384_mgf1_48_test.json", Algorithm::PS384),
    ("rsa_pss_4096_sha512_mgf1_64_test.json", Algorithm::PS512),
    ("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::ES256),
    ("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::ES384),
    ("ed25519_test.json", Algorithm::EdDSA),
];

fn check_all(alg: Algorithm) {
    for (file, file_alg) in FILES {
        if file_alg == alg {
            check(file, alg);
        }
    }
}

#[test]
fn rs256() {
    check_all(Algorithm::RS256);
}

#[test]
fn rs384() {
    check_all(Algorithm::RS384);
}

#[test]
fn rs512() {
    check_all(Algorithm::RS512);
}

#[test]
fn ps256() {
    check_all(Algorithm::PS256);
}

#[test]
fn ps384() {
    check_all(Algorithm::PS384);
}

#[test]
fn ps512() {
    check_all(Algorithm::PS512);
}

#[test]
fn es256() {
    check_all(Algorithm::ES256);
}

#[test]
fn es384() {
    check_all(Algorithm::ES384);
}

#[test]
fn eddsa() {
    check_all(Algorithm::EdDSA);
}

/// Every file in the data folder is run, and every algorithm with vectors has a test above.
#[test]
fn every_vector_file_is_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wycheproof");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
