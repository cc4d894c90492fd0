//! Real keys and tokens for tests: jwt-simple signs, tollgate verifies.

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

pub const NOW: u64 = 1_800_000_000;

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

pub struct TestKeys {
    pub rs256: RS256KeyPair,
    pub ps256: PS256KeyPair,
    pub es256: ES256KeyPair,
    pub es384: ES384KeyPair,
    pub eddsa: Ed25519KeyPair,
    pub hs256: HS256Key,
}

/// Keys are made once per test run (RSA generation takes a moment).
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        rs256: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
        ps256: PS256KeyPair::generate(2048).unwrap().with_key_id("rsa-pss"),
        es256: ES256KeyPair::generate().with_key_id("ec-256"),
        es384: ES384KeyPair::generate().with_key_id("ec-384"),
        eddsa: Ed25519KeyPair::generate().with_key_id("ed-1"),
        hs256: HS256Key::generate().with_key_id("hmac-1"),
    })
}

fn rsa_jwk(kid: &str, components: RSAPublicKeyComponents) -> Value {
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": b64(&components.n), "e": b64(&components.e),
            "x5t": "ignored", "x5c": ["ignored"], "issuer": "ignored" })
}

fn ec_jwk(kid: &str, crv: &str, point: &[u8]) -> Value {
    let half = (point.len() - 1) / 2;
    json!({ "kty": "EC", "kid": kid, "crv": crv,
            "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..]) })
}

pub fn jwks() -> Value {
    let k = keys();
    json!({ "keys": [
        rsa_jwk("rsa-1", k.rs256.public_key().to_components()),
        rsa_jwk("rsa-pss", k.ps256.public_key().to_components()),
        ec_jwk("ec-256", "P-256", &k.es256.public_key().public_key().to_bytes_uncompressed()),
        ec_jwk("ec-384", "P-384", &k.es384.public_key().public_key().to_bytes_uncompressed()),
        { "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(&k.eddsa.public_key().to_bytes()) },
        { "kty": "oct", "kid": "hmac-1", "k": b64(&k.hs256.to_bytes()) },
        { "kty": "RSA", "kid": "enc-key", "use": "enc", "n": "AQAB", "e": "AQAB" }
    ]})
}

/// The test set's public keys with these kids, as a provider would publish them (no secret).
pub fn public_jwks(kids: &[&str]) -> Value {
    let all = jwks();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kty"] != "oct" && kids.iter().any(|kid| k["kid"] == *kid))
        .cloned()
        .collect();
    json!({ "keys": keys })
}

pub fn jwt_section() -> Value {
    json!({
        "issuers": ["https://login.microsoftonline.com/tenant/v2.0"],
        "audiences": ["api://invoice-validator"],
        "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"],
        "jwks": jwks(),
        "required_claims": [{ "name": "roles", "any_of": ["Invoices.Validate"] }],
        "claims_to_headers": { "oid": "x-user-oid" }
    })
}

pub fn claims() -> JWTClaims<Value> {
    let mut claims = Claims::with_custom_claims(
        json!({ "azp": "client-1", "roles": ["Invoices.Validate"], "oid": "user-7", "big": "x" }),
        Duration::from_secs(60),
    )
    .with_issuer("https://login.microsoftonline.com/tenant/v2.0")
    .with_audience("api://invoice-validator");
    claims.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(NOW - 10));
    claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
    claims
}

pub fn rs256(claims: JWTClaims<Value>) -> String {
    keys().rs256.sign(claims).unwrap()
}
