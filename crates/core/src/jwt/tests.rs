//! Verification against real keys and tokens made here (jwt-simple signs, tollgate verifies).

use crate::jwt::failure::JwtFailure;
use crate::plan::Plan;
use crate::testing::tokens::*;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

fn plan_with(jwt: Value) -> Plan {
    let config = json!({
        "products": { "p": {} },
        "consumers": [{ "id": "flow", "product": "p", "jwt_client_ids": ["client-1"] }],
        "jwt": jwt,
        "operations": [{ "name": "op", "path": "/", "auth": "jwt" }]
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn verify(plan: &Plan, token: &str) -> Result<crate::jwt::verify::VerifiedToken, JwtFailure> {
    plan.jwt.as_ref().unwrap().verifier.verify(token, NOW, None)
}

/// A token with this header and payload and the signature of `signed_from`.
fn forge(header: Value, payload: Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        signature
    )
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_string).collect()
}

#[test]
fn every_algorithm_verifies_and_keeps_only_needed_claims() {
    let plan = plan_with(jwt_section());
    let k = keys();
    for token in [
        k.rs256.sign(claims()).unwrap(),
        k.ps256.sign(claims()).unwrap(),
        k.es256.sign(claims()).unwrap(),
        k.es384.sign(claims()).unwrap(),
        k.eddsa.sign(claims()).unwrap(),
        k.hs256.authenticate(claims()).unwrap(),
    ] {
        let verified = verify(&plan, &token).unwrap_or_else(|e| panic!("{e}: {token}"));
        assert_eq!(verified.exp, NOW + 3600);
        let mut kept: Vec<&str> = verified.claims.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec!["azp", "oid", "roles"]);
    }
}

#[test]
fn tampered_payload_or_signature_is_refused() {
    let plan = plan_with(jwt_section());
    let token = rs256(claims());
    let p = parts(&token);
    let mut payload: Value =
        serde_json::from_slice(&crate::jwt::keys::base64url(&p[1]).unwrap()).unwrap();
    payload["roles"] = json!(["Admin"]);
    let tampered = format!("{}.{}.{}", p[0], b64(payload.to_string().as_bytes()), p[2]);
    assert_eq!(verify(&plan, &tampered), Err(JwtFailure::SignatureInvalid));

    let mut signature = crate::jwt::keys::base64url(&p[2]).unwrap();
    signature[10] ^= 1;
    let tampered = format!("{}.{}.{}", p[0], p[1], b64(&signature));
    assert_eq!(verify(&plan, &tampered), Err(JwtFailure::SignatureInvalid));
}

#[test]
fn rsa_signatures_of_wrong_length_or_out_of_range_are_refused() {
    let plan = plan_with(jwt_section());
    let p = parts(&rs256(claims()));
    let signature = crate::jwt::keys::base64url(&p[2]).unwrap();
    let n = keys().rs256.public_key().to_components().n;
    for bad in [
        signature[1..].to_vec(),
        [signature.clone(), vec![0]].concat(),
        [vec![0], signature.clone()].concat(),
        vec![0xff; signature.len()],
        n.clone(),
        vec![0; signature.len()],
        Vec::new(),
    ] {
        let token = format!("{}.{}.{}", p[0], p[1], b64(&bad));
        let result = verify(&plan, &token);
        assert!(
            result == Err(JwtFailure::SignatureInvalid) || result == Err(JwtFailure::Malformed),
            "{result:?}"
        );
    }
}

#[test]
fn alg_none_and_disallowed_algorithms_are_refused() {
    let plan = plan_with(jwt_section());
    let payload = json!({ "azp": "client-1", "exp": NOW + 60 });
    for alg in ["none", "None", "NONE"] {
        let token = forge(json!({ "alg": alg, "typ": "JWT" }), payload.clone(), "");
        assert_eq!(
            verify(&plan, &token),
            Err(JwtFailure::AlgorithmNotAllowed),
            "{alg}"
        );
    }
    let mut only_rs = jwt_section();
    only_rs["algorithms"] = json!(["RS256"]);
    let plan = plan_with(only_rs);
    let es = keys().es256.sign(claims()).unwrap();
    assert_eq!(verify(&plan, &es), Err(JwtFailure::AlgorithmNotAllowed));
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let mut section = jwt_section();
    // Even with HS256 allowed, an HMAC over the RSA key's bytes names an RSA key: refused.
    section["algorithms"] = json!(["RS256", "HS256"]);
    let plan = plan_with(section);
    let n = keys().rs256.public_key().to_components().n;
    let confused = HS256Key::from_bytes(&n).with_key_id("rsa-1");
    let token = confused.authenticate(claims()).unwrap();
    assert_eq!(verify(&plan, &token), Err(JwtFailure::AlgorithmMismatch));
    // Without a kid it finds only the oct key, whose secret it does not know.
    let token = HS256Key::from_bytes(&n).authenticate(claims()).unwrap();
    assert_eq!(verify(&plan, &token), Err(JwtFailure::SignatureInvalid));
}

#[test]
fn key_choice_by_kid_and_by_alg() {
    let plan = plan_with(jwt_section());
    let unknown = keys().rs256.clone().with_key_id("rotated-away");
    assert_eq!(
        verify(&plan, &unknown.sign(claims()).unwrap()),
        Err(JwtFailure::SigningKeyNotFound)
    );
    // No kid: the keys that fit the algorithm are tried.
    let no_kid = ES256KeyPair::from_bytes(&keys().es256.to_bytes()).unwrap();
    let token = no_kid.sign(claims()).unwrap();
    assert!(Token::decode_metadata(&token).unwrap().key_id().is_none());
    assert!(verify(&plan, &token).is_ok());
}

#[test]
fn malformed_tokens() {
    let plan = plan_with(jwt_section());
    let good = rs256(claims());
    let p = parts(&good);
    for bad in [
        format!("{}.{}", p[0], p[1]),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], p[2]),
        format!("{}.{}!.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}", b64(b"not json"), p[1], p[2]),
        format!("{}.{}.{}", p[0], b64(b"[1,2]"), p[2]),
        String::new(),
        "..".to_string(),
    ] {
        assert_eq!(verify(&plan, &bad), Err(JwtFailure::Malformed), "{bad}");
    }
    let huge = format!("{}.{}.{}", p[0], "A".repeat(64 * 1024), p[2]);
    assert_eq!(verify(&plan, &huge), Err(JwtFailure::TooLarge));
}

#[test]
fn claims_are_checked_after_the_signature() {
    let plan = plan_with(jwt_section());
    let mut expired = claims();
    expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 1));
    assert_eq!(verify(&plan, &rs256(expired)), Err(JwtFailure::Expired));
    let mut no_exp = claims();
    no_exp.expires_at = None;
    assert_eq!(verify(&plan, &rs256(no_exp)), Err(JwtFailure::NoExpiry));
    let mut early = claims();
    early.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 30));
    assert_eq!(verify(&plan, &rs256(early)), Err(JwtFailure::NotYetValid));
    let issuer = claims().with_issuer("https://evil");
    assert_eq!(
        verify(&plan, &rs256(issuer)),
        Err(JwtFailure::IssuerNotAllowed)
    );
    let audience = claims().with_audience("api://other");
    assert_eq!(
        verify(&plan, &rs256(audience)),
        Err(JwtFailure::AudienceNotAllowed)
    );
    let audiences =
        claims().with_audiences(HashSet::from(["api://other", "api://invoice-validator"]));
    assert!(verify(&plan, &rs256(audiences)).is_ok());

    let mut skewed = jwt_section();
    skewed["clock_skew_s"] = json!(60);
    let plan = plan_with(skewed);
    let mut early = claims();
    early.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 30));
    assert!(verify(&plan, &rs256(early)).is_ok());
}

#[test]
fn critical_headers_are_refused() {
    let plan = plan_with(jwt_section());
    let k = &keys().hs256;
    let header = json!({ "alg": "HS256", "kid": "hmac-1", "crit": ["exp"], "exp": 1 });
    let payload = json!({ "azp": "client-1", "exp": NOW + 60 });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let tag = hmac_sha256(&k.to_bytes(), input.as_bytes());
    let token = format!("{input}.{}", b64(&tag));
    assert_eq!(
        verify(&plan, &token),
        Err(JwtFailure::UnsupportedCriticalHeader)
    );
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn the_forging_hmac_matches_jwt_simple() {
    let k = &keys().hs256;
    let token = k.authenticate(claims()).unwrap();
    let (input, tag) = token.rsplit_once('.').unwrap();
    assert_eq!(b64(&hmac_sha256(&k.to_bytes(), input.as_bytes())), tag);
}
