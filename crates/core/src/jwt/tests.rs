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
    let verifier = &plan.jwt.as_ref().unwrap().verifier;
    verifier
        .verify(token, NOW, None)
        .map(|verified| verified.token)
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

/// A plan whose keys come from `jwks_uri`, and a fetched set of `kids` (generation 1).
fn remote_plan_and_keys(kids: &[&str]) -> (Plan, crate::jwt::keys::KeySet) {
    let mut section = jwt_section();
    section.as_object_mut().unwrap().remove("jwks");
    section["jwks_uri"] = json!({ "url": "https://idp.example/keys", "cluster": "idp" });
    (plan_with(section), fetched_set(kids, 1))
}

/// The public keys `kids` as fetch number `generation` brought them.
fn fetched_set(kids: &[&str], generation: u64) -> crate::jwt::keys::KeySet {
    let body = public_jwks(kids).to_string();
    crate::jwt::fetched::key_set_from_body(body.as_bytes(), generation)
        .unwrap()
        .set
}

#[test]
fn a_token_without_kid_that_no_fetched_key_verifies_may_be_signed_by_a_new_key() {
    let (plan, fetched) = remote_plan_and_keys(&["ec-256"]);
    let verifier = &plan.jwt.as_ref().unwrap().verifier;
    let no_kid = ES256KeyPair::from_bytes(&keys().es256.to_bytes()).unwrap();
    let other = ES256KeyPair::generate();
    let unknown_signer = other.sign(claims()).unwrap();
    assert_eq!(
        verifier.verify(&unknown_signer, NOW, Some(&fetched)).err(),
        Some(JwtFailure::NoKeyVerifies)
    );
    assert!(verifier
        .verify(&no_kid.sign(claims()).unwrap(), NOW, Some(&fetched))
        .is_ok());
    // With a kid, a bad signature is the key's own verdict: it lasts.
    let forged = other.with_key_id("ec-256").sign(claims()).unwrap();
    assert_eq!(
        verifier.verify(&forged, NOW, Some(&fetched)).err(),
        Some(JwtFailure::SignatureInvalid)
    );
    // Inline keys only: a token without kid that none verifies is plainly invalid.
    let inline = plan_with(jwt_section());
    assert_eq!(
        verify(&inline, &ES256KeyPair::generate().sign(claims()).unwrap()),
        Err(JwtFailure::SignatureInvalid)
    );
}

#[test]
fn a_verified_token_names_the_key_it_rests_on() {
    use crate::jwt::key_binding::KeyBinding;
    let (plan, fetched) = remote_plan_and_keys(&["rsa-1", "ec-256"]);
    let verifier = &plan.jwt.as_ref().unwrap().verifier;
    let verified = verifier
        .verify(&rs256(claims()), NOW, Some(&fetched))
        .unwrap();
    let KeyBinding::Fetched { generation, key } = verified.key else {
        panic!("{:?}", verified.key);
    };
    assert_eq!(generation, 1);
    assert!(fetched.holds(&key));
    let inline = plan_with(jwt_section());
    let verified = inline
        .jwt
        .as_ref()
        .unwrap()
        .verifier
        .verify(&rs256(claims()), NOW, None);
    assert_eq!(verified.unwrap().key, KeyBinding::Inline);
}

/// A request through the whole pipeline with this token and these fetched keys.
fn decide_with(
    plan: &Plan,
    tokens: &mut crate::jwt::token_cache::TokenCache,
    token: &str,
    fetched: Option<&crate::jwt::keys::KeySet>,
) -> crate::verdict::Decision {
    let bearer = format!("Bearer {token}");
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/".to_vec()),
        ("authorization".to_string(), bearer.into_bytes()),
    ];
    let counters = crate::testing::MemoryStore::default();
    let mut env = crate::pipeline::RequestEnv::new(
        &crate::testing::FixedClock(NOW * 1000),
        tokens,
        &counters,
    );
    env.fetched_keys = fetched;
    crate::pipeline::decide(plan, &headers, &mut env)
}

#[test]
fn a_cached_token_is_refused_once_its_key_left_the_fetched_set() {
    use crate::verdict::Verdict;
    let (plan, before) = remote_plan_and_keys(&["rsa-1", "ec-256"]);
    let mut tokens = crate::jwt::token_cache::TokenCache::new(16, [3; 16]);
    let token = rs256(claims());
    let first = decide_with(&plan, &mut tokens, &token, Some(&before));
    assert!(matches!(first.verdict, Verdict::Forward(_)));
    assert_eq!(tokens.len(), 1);
    // A refresh that keeps the key keeps the entry.
    let kept = fetched_set(&["rsa-1"], 2);
    let again = decide_with(&plan, &mut tokens, &token, Some(&kept));
    assert!(matches!(again.verdict, Verdict::Forward(_)));
    // The provider withdrew rsa-1: the very next request is refused, long before `exp`.
    let after = fetched_set(&["ec-256"], 3);
    let refused = decide_with(&plan, &mut tokens, &token, Some(&after));
    let Verdict::Deny(denial) = refused.verdict else {
        panic!("{:?}", refused.verdict);
    };
    assert_eq!(
        denial.message,
        "JWT validation failed: signing key not found. Access denied."
    );
    assert!(refused.unknown_kid);
}

#[test]
fn a_token_without_kid_asks_for_keys_and_is_remembered_only_for_these_keys() {
    let (plan, fetched) = remote_plan_and_keys(&["ec-256"]);
    let mut tokens = crate::jwt::token_cache::TokenCache::new(16, [3; 16]);
    let stranger = ES256KeyPair::generate().sign(claims()).unwrap();
    let first = decide_with(&plan, &mut tokens, &stranger, Some(&fetched));
    assert!(first.unknown_kid, "may be signed by a key not fetched yet");
    let hash = tokens.hash(&stranger);
    assert_eq!(
        tokens.failure_with(&hash, NOW, Some(&fetched)),
        Some(JwtFailure::NoKeyVerifies)
    );
    let next = fetched_set(&["rsa-1", "ec-256"], 2);
    assert_eq!(tokens.failure_with(&hash, NOW, Some(&next)), None);
}
