//! `decide` on arbitrary requests against one fixed plan (keys, HS256 tokens, every auth mode,
//! a product-restricted operation, unmatched reject or pass): it never panics, answers the same
//! when asked again (the token cache changes nothing), and forwards only when the operation's
//! auth is satisfied by a credential this test made valid itself.

use super::config;
use crate::credential::Headers;
use crate::jwt::token_cache::TokenCache;
use crate::pipeline::{decide, RequestEnv};
use crate::plan::Plan;
use crate::subscription::KeyHash;
use crate::testing::tokens::b64;
use crate::testing::{FixedClock, MemoryStore};
use crate::verdict::{Forward, Verdict};
use jwt_simple::prelude::*;
use percent_encoding::percent_decode;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://issuer.example/tenant";
const AUDIENCE: &str = "api://props";
const KEY_HEADER: &str = "ocp-apim-subscription-key";
const KEY_PARAM: &str = "subscription-key";
const HMAC_SECRET: &[u8; 32] = b"proptest-hmac-secret-0123456789!";

/// The consumers: id, subscription key, JWT client id.
const CONSUMERS: [(&str, &str, &str); 2] = [
    ("alice", "key-alice-7f3a9c51e2", "client-a"),
    ("bob", "key-bob-0d4e8b2f6a19", "client-b"),
];

/// How an operation of the plan authenticates, as this test's oracle reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Auth {
    Key,
    Jwt,
    Either,
    Both,
    None,
}

/// One operation of the plan, as the oracle reads it.
struct Op {
    name: &'static str,
    /// Empty: any method.
    methods: &'static [&'static str],
    path: &'static str,
    prefix: bool,
    auth: Auth,
    gold_only: bool,
}

const fn op(name: &'static str, path: &'static str, prefix: bool, auth: Auth) -> Op {
    Op {
        name,
        methods: &[],
        path,
        prefix,
        auth,
        gold_only: false,
    }
}

/// The plan's operations, in order.
const OPERATIONS: [Op; 6] = [
    op("key", "/key", false, Auth::Key),
    op("jwt", "/jwt", true, Auth::Jwt),
    Op {
        methods: &["GET", "POST"],
        ..op("either", "/either", false, Auth::Either)
    },
    op("both", "/both/", true, Auth::Both),
    Op {
        gold_only: true,
        ..op("gold-only", "/admin", false, Auth::Either)
    },
    op("open", "/open", true, Auth::None),
];

fn plan_json(unmatched: &str) -> Value {
    let operations: Vec<Value> = OPERATIONS
        .iter()
        .map(|o| {
            let mut op = json!({ "name": o.name });
            op[if o.prefix { "path_prefix" } else { "path" }] = json!(o.path);
            if !o.methods.is_empty() {
                op["methods"] = json!(o.methods);
            }
            let auth = match o.auth {
                Auth::Key => "subscription_key",
                Auth::Jwt => "jwt",
                Auth::Either => "either",
                Auth::Both => "both",
                Auth::None => "none",
            };
            op["auth"] = json!(auth);
            if o.gold_only {
                op["products"] = json!(["gold"]);
            }
            op["request_headers"] = json!({ "set": { "x-consumer": "{consumer}" } });
            op
        })
        .collect();
    json!({
        "products": { "gold": {}, "silver": {} },
        "consumers": [
            { "id": "alice", "product": "gold",
              "keys": [KeyHash::of(CONSUMERS[0].1.as_bytes()).to_config_string()],
              "jwt_client_ids": [CONSUMERS[0].2] },
            { "id": "bob", "product": "silver",
              "keys": [KeyHash::of(CONSUMERS[1].1.as_bytes()).to_config_string()],
              "jwt_client_ids": [CONSUMERS[1].2] }
        ],
        "jwt": {
            "issuers": [ISSUER],
            "audiences": [AUDIENCE],
            "algorithms": ["HS256"],
            "jwks": { "keys": [{ "kty": "oct", "kid": "h1", "k": b64(HMAC_SECRET) }] },
            "required_claims": [{ "name": "roles", "any_of": ["api.call"] }],
            "claims_to_headers": { "oid": "x-user-oid" }
        },
        "operations": operations,
        "unmatched": unmatched
    })
}

struct Fixture {
    reject: Plan,
    pass: Plan,
    /// Tokens that pass every check: (the consumer their client is, token). The last one's
    /// client is no consumer: it names nobody, but is a valid token where a key names the
    /// consumer (`both`: "the key names the consumer, and a valid token must come too").
    valid_tokens: Vec<(Option<usize>, String)>,
    /// Tokens that must never let a request through: bad signature, expired, wrong audience,
    /// `alg: none`, tampered payload, a required claim missing, a cut or extended signature.
    invalid_tokens: Vec<String>,
}

fn claims_for(client: &str, roles: &[&str]) -> JWTClaims<Value> {
    let mut claims = Claims::with_custom_claims(
        json!({ "azp": client, "roles": roles, "oid": format!("oid-{client}") }),
        Duration::from_secs(60),
    )
    .with_issuer(ISSUER)
    .with_audience(AUDIENCE);
    claims.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
    claims
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = HS256Key::from_bytes(HMAC_SECRET).with_key_id("h1");
        let sign = |claims| key.authenticate(claims).unwrap();
        let mut valid_tokens: Vec<(Option<usize>, String)> = CONSUMERS
            .iter()
            .enumerate()
            .map(|(i, (_, _, client))| (Some(i), sign(claims_for(client, &["api.call"]))))
            .collect();
        valid_tokens.push((None, sign(claims_for("client-unknown", &["api.call"]))));

        let other_key = HS256Key::from_bytes(b"another-secret-of-32-bytes-long!").with_key_id("h1");
        let mut expired = claims_for("client-a", &["api.call"]);
        expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 1));
        let wrong_audience = claims_for("client-a", &["api.call"]).with_audience("api://other");
        let alice = &valid_tokens[0].1;
        let bob = &valid_tokens[1].1;
        let alice_parts: Vec<&str> = alice.split('.').collect();
        let bob_parts: Vec<&str> = bob.split('.').collect();
        let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let invalid_tokens = vec![
            other_key
                .authenticate(claims_for("client-a", &["api.call"]))
                .unwrap(),
            sign(expired),
            sign(wrong_audience),
            sign(claims_for("client-a", &["other.role"])),
            format!("{none_header}.{}.", alice_parts[1]),
            // Alice's payload under Bob's signature.
            format!("{}.{}.{}", alice_parts[0], alice_parts[1], bob_parts[2]),
            // The signature cut short.
            alice[..alice.len() - 2].to_string(),
            format!("{alice}x"),
        ];
        Fixture {
            reject: Plan::from_json(plan_json("reject").to_string().as_bytes()).unwrap(),
            pass: Plan::from_json(plan_json("pass").to_string().as_bytes()).unwrap(),
            valid_tokens,
            invalid_tokens,
        }
    })
}

// ------------------------------------------------------------------------------- requests

fn huge() -> impl Strategy<Value = Vec<u8>> {
    (16_000usize..80_000, any::<u8>()).prop_map(|(len, byte)| vec![byte; len])
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "HEAD", "PUT", "DELETE", "get", "OPTIONS"])
            .prop_map(|m| m.as_bytes().to_vec()),
        1 => any_bytes(),
        1 => "\\PC{0,12}".prop_map(String::into_bytes),
    ]
}

/// A subscription key as sent: valid, almost valid, or anything.
fn key_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![0usize, 1]).prop_map(|i| CONSUMERS[i].1.as_bytes().to_vec()),
        1 => prop::sample::select(vec![0usize, 1])
            .prop_map(|i| format!("{} ", CONSUMERS[i].1).into_bytes()),
        1 => prop::sample::select(vec![0usize, 1])
            .prop_map(|i| CONSUMERS[i].1.to_uppercase().into_bytes()),
        1 => any_bytes(),
        1 => Just(Vec::new()),
        1 => huge(),
    ]
}

fn token() -> impl Strategy<Value = String> {
    let f = fixture();
    let valid: Vec<String> = f.valid_tokens.iter().map(|(_, t)| t.clone()).collect();
    prop_oneof![
        3 => prop::sample::select(valid),
        3 => prop::sample::select(f.invalid_tokens.clone()),
        1 => "[A-Za-z0-9_.-]{0,40}",
        1 => "\\PC{0,40}",
    ]
}

/// An `Authorization` value: bearer tokens in several spellings, other schemes, anything.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => token().prop_map(|t| format!("Bearer {t}").into_bytes()),
        1 => token().prop_map(|t| format!("bearer   {t}  ").into_bytes()),
        1 => token().prop_map(String::into_bytes),
        1 => token().prop_map(|t| format!("Basic {t}").into_bytes()),
        1 => token().prop_map(|t| {
            let mut value = format!("Bearer {t}").into_bytes();
            value.push(0xff);
            value
        }),
        1 => any_bytes(),
        1 => huge().prop_map(|mut v| {
            v.splice(0..0, b"Bearer ".iter().copied());
            v
        }),
    ]
}

fn query_piece() -> impl Strategy<Value = String> {
    let key_text = prop_oneof![
        3 => prop::sample::select(vec![0usize, 1]).prop_map(|i| CONSUMERS[i].1.to_string()),
        // Percent-encoded, every byte.
        1 => prop::sample::select(vec![0usize, 1]).prop_map(|i| {
            CONSUMERS[i].1.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
        }),
        1 => "[a-z0-9%=&]{0,16}",
    ];
    prop_oneof![
        3 => key_text.clone().prop_map(|k| format!("{KEY_PARAM}={k}")),
        1 => key_text.prop_map(|k| format!("subscription%2Dkey={k}")),
        2 => "[a-z]{1,6}=[a-zA-Z0-9%+]{0,8}",
        1 => "\\PC{0,12}",
    ]
}

fn path() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        6 => prop::sample::select(vec![
            "/key", "/key/", "/jwt", "/jwt/x/y", "/jwtx", "/either", "/both/", "/both/a",
            "/both", "/admin", "/admin/x", "/open", "/open/x", "/opener", "/", "", "/KEY",
        ])
        .prop_map(str::to_string),
        1 => "/\\PC{0,24}",
        1 => "\\PC{0,8}",
    ];
    let query =
        prop::option::of(prop::collection::vec(query_piece(), 0..4).prop_map(|p| p.join("&")));
    prop_oneof![
        8 => (base, query).prop_map(|(base, query)| match query {
            Some(query) => format!("{base}?{query}").into_bytes(),
            None => base.into_bytes(),
        }),
        1 => any_bytes(),
        1 => huge().prop_map(|mut v| {
            v.insert(0, b'/');
            v
        }),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = |n: &'static str| Just(n.to_string());
    prop_oneof![
        4 => (name(KEY_HEADER), key_value()),
        4 => (name("authorization"), authorization()),
        1 => (name(":method"), method()),
        1 => (name(":path"), path()),
        1 => (name(":authority"), any_bytes()),
        1 => (name("x-user-oid"), any_bytes()),
        1 => (name("Ocp-Apim-Subscription-Key"), key_value()),
        1 => ("[a-z][a-z0-9-]{0,12}", any_bytes()),
        1 => ("[a-z][a-z0-9-]{0,12}", huge()),
    ]
}

/// Headers as a host gives them, in any order: maybe the pseudo-headers, then anything,
/// repeated or not.
fn request() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    (
        prop::option::weighted(0.95, method()),
        prop::option::weighted(0.95, path()),
        prop::option::weighted(0.8, any_bytes()),
        prop::collection::vec(header(), 0..8),
    )
        .prop_flat_map(|(method, path, authority, extra)| {
            let mut headers = Vec::new();
            headers.extend(method.map(|m| (":method".to_string(), m)));
            headers.extend(path.map(|p| (":path".to_string(), p)));
            headers.extend(authority.map(|a| (":authority".to_string(), a)));
            headers.extend(extra);
            Just(headers).prop_shuffle()
        })
}

// --------------------------------------------------------------------------------- oracle

fn first_text<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// The operation this request is, by the oracle's own reading of the plan; `None`: no
/// operation (or no usable method and path).
fn oracle_operation(headers: &Headers) -> Option<usize> {
    let method = first_text(headers, ":method")?;
    let path = first_text(headers, ":path")?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    OPERATIONS.iter().position(|op| {
        let method_ok = op.methods.is_empty()
            || op
                .methods
                .iter()
                .any(|m| *m == method || (method == "HEAD" && *m == "GET"));
        let path_ok = if op.prefix {
            path.strip_prefix(op.path).is_some_and(|rest| {
                rest.is_empty() || op.path.ends_with('/') || rest.starts_with('/')
            })
        } else {
            path == op.path
        };
        method_ok && path_ok
    })
}

/// Consumers whose valid key the request carries where it could count: as a whole value of
/// the key header, or as the percent-decoded value of any query parameter. An
/// over-approximation (the filter also asks for the right parameter name, and that header and
/// query agree): a forward the oracle refuses is certainly wrong.
fn keys_present(headers: &Headers) -> Vec<usize> {
    let query_values: Vec<Vec<u8>> = first_text(headers, ":path")
        .and_then(|p| p.split_once('?'))
        .map(|(_, q)| {
            q.split('&')
                .map(|piece| piece.split_once('=').map_or("", |(_, v)| v))
                .map(|v| percent_decode(v.as_bytes()).collect())
                .collect()
        })
        .unwrap_or_default();
    (0..CONSUMERS.len())
        .filter(|&i| {
            let key = CONSUMERS[i].1.as_bytes();
            headers
                .iter()
                .any(|(n, v)| n == KEY_HEADER && v.as_slice() == key)
                || query_values.iter().any(|v| v.as_slice() == key)
        })
        .collect()
}

/// The consumers (`None`: a client that is none) whose valid token is a whole word of some
/// `Authorization` value (again an over-approximation: the filter also wants the `Bearer`
/// scheme and one token only).
fn tokens_present(headers: &Headers) -> Vec<Option<usize>> {
    fixture()
        .valid_tokens
        .iter()
        .filter(|(_, token)| {
            headers.iter().any(|(n, v)| {
                n == "authorization"
                    && String::from_utf8_lossy(v)
                        .split_whitespace()
                        .any(|word| word == token)
            })
        })
        .map(|(i, _)| *i)
        .collect()
}

/// Why this forward must not have happened, if it must not.
fn forward_refusal(headers: &Headers, forward: &Forward) -> Option<String> {
    let expected = oracle_operation(headers);
    if expected != Some(forward.operation) {
        return Some(format!(
            "forwarded as operation {} but the request is {expected:?}",
            forward.operation
        ));
    }
    let Op {
        name,
        auth,
        gold_only,
        ..
    } = OPERATIONS[forward.operation];
    let consumer = forward
        .consumer
        .as_deref()
        .and_then(|id| CONSUMERS.iter().position(|(c, _, _)| *c == id));
    if forward.consumer.is_some() && consumer.is_none() {
        return Some(format!("unknown consumer {:?}", forward.consumer));
    }
    let keys = keys_present(headers);
    let tokens = tokens_present(headers);
    let by_key = consumer.is_some_and(|c| keys.contains(&c));
    let by_token = consumer.is_some_and(|c| tokens.contains(&Some(c)));
    let satisfied = match auth {
        Auth::None => consumer.is_none(),
        Auth::Key => by_key,
        Auth::Jwt => by_token,
        Auth::Either => by_key || by_token,
        Auth::Both => by_key && !tokens.is_empty(),
    };
    if !satisfied {
        return Some(format!(
            "operation {name} ({auth:?}) forwarded for {:?} with valid keys of {keys:?} and \
             valid tokens of {tokens:?}",
            forward.consumer
        ));
    }
    if gold_only && consumer != Some(0) {
        return Some(format!(
            "{name} is for gold only, forwarded for {consumer:?}"
        ));
    }
    None
}

fn check(plan: &Plan, pass: bool, headers: &Headers) -> Result<(), TestCaseError> {
    let mut tokens = TokenCache::new(8, [3; 16]);
    let counters = MemoryStore::default();
    let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
    let first = decide(plan, headers, &mut env);
    // Again, through the token cache (a hit, or a cached failure): the same decision.
    let again = decide(plan, headers, &mut env);
    prop_assert_eq!(&first, &again);
    match &first.verdict {
        Verdict::Deny(denial) => prop_assert!(denial.status >= 400, "{denial:?}"),
        Verdict::Forward(forward) => {
            if let Some(why) = forward_refusal(headers, forward) {
                return Err(TestCaseError::fail(why));
            }
        }
        Verdict::PassThrough(_) => {
            prop_assert!(pass, "pass-through with unmatched: reject");
            prop_assert_eq!(
                oracle_operation(headers),
                None,
                "pass-through of an operation"
            );
        }
        Verdict::AskGlobal(_) => prop_assert!(false, "no global limit in this plan"),
        Verdict::Preflight(_) => prop_assert!(false, "no cors section in this plan"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(384))]

    /// `decide` never panics, decides the same twice, and forwards only a request whose
    /// operation's auth is met by a credential made valid here, for the consumer it names.
    #[test]
    fn decide_forwards_only_with_a_valid_credential(pass in any::<bool>(), headers in request()) {
        let f = fixture();
        let plan = if pass { &f.pass } else { &f.reject };
        check(plan, pass, &headers)?;
    }
}

/// The generators reach every kind of verdict, so the property above is not vacuous.
#[test]
fn the_generators_reach_forwards_for_every_auth_mode() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let f = fixture();
    let mut runner = TestRunner::deterministic();
    let strategy = request();
    let mut forwarded = [0usize; OPERATIONS.len()];
    let (mut denied, mut passed) = (0, 0);
    for _ in 0..3000 {
        let headers = strategy.new_tree(&mut runner).unwrap().current();
        let mut tokens = TokenCache::new(8, [3; 16]);
        let counters = MemoryStore::default();
        let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
        match decide(&f.pass, &headers, &mut env).verdict {
            Verdict::Forward(forward) => forwarded[forward.operation] += 1,
            Verdict::Deny(_) => denied += 1,
            Verdict::PassThrough(_) => passed += 1,
            Verdict::AskGlobal(_) | Verdict::Preflight(_) => {}
        }
    }
    assert!(
        forwarded.iter().all(|&n| n > 0) && denied > 0 && passed > 0,
        "forwarded per operation {forwarded:?}, denied {denied}, passed {passed}"
    );
}

#[test]
fn the_fixture_tokens_are_what_they_claim() {
    let f = fixture();
    let verifier = &f.reject.jwt.as_ref().unwrap().verifier;
    for (_, token) in &f.valid_tokens {
        assert!(verifier.verify(token, NOW, None).is_ok(), "{token}");
    }
    // Refused by verification, or (required claim, unknown client) by the pipeline.
    for token in &f.invalid_tokens {
        let headers = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/jwt".to_vec()),
            (
                "authorization".to_string(),
                format!("Bearer {token}").into_bytes(),
            ),
        ];
        let mut tokens = TokenCache::new(8, [3; 16]);
        let counters = MemoryStore::default();
        let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
        assert!(
            matches!(
                decide(&f.reject, &headers, &mut env).verdict,
                Verdict::Deny(_)
            ),
            "{token}"
        );
    }
}
