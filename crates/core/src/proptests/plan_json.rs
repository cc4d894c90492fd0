//! `Plan::from_json` on arbitrary input never panics: arbitrary JSON trees (keys and strings
//! drawn partly from the configuration's own vocabulary, so they get past the first checks),
//! a full valid configuration with one subtree replaced or removed, arbitrary bytes, and valid
//! configuration text with bytes flipped. A plan that loads is then used once (counters
//! prepared, a few requests decided), which must not panic either.

use super::config;
use crate::jwt::token_cache::TokenCache;
use crate::pipeline::{decide, RequestEnv};
use crate::plan::Plan;
use crate::subscription::KeyHash;
use crate::testing::tokens::{claims, jwt_section, rs256};
use crate::testing::{FixedClock, MemoryStore};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Number, Value};
use std::sync::OnceLock;

const NAMES: &[&str] = &[
    "subscription_key",
    "header",
    "query",
    "jwt",
    "products",
    "consumers",
    "operations",
    "unmatched",
    "rate_limit_headers",
    "global_limits",
    "issuers",
    "audiences",
    "algorithms",
    "jwks",
    "openid_config",
    "jwks_uri",
    "unknown_kid_refetch_s",
    "clock_skew_s",
    "consumer_claim",
    "required_claims",
    "claims_to_headers",
    "forward_token",
    "default_product",
    "token_cache_size",
    "max_dynamic_consumers",
    "url",
    "cluster",
    "refresh_interval_s",
    "timeout_ms",
    "keys",
    "kty",
    "kid",
    "alg",
    "use",
    "n",
    "e",
    "crv",
    "x",
    "y",
    "k",
    "name",
    "any_of",
    "all_of",
    "separator",
    "rate_limit",
    "quota",
    "calls",
    "renewal_period_s",
    "scope",
    "id",
    "product",
    "jwt_client_ids",
    "methods",
    "path",
    "path_prefix",
    "auth",
    "rewrite",
    "request_headers",
    "response_headers",
    "set",
    "append",
    "remove",
    "limit",
    "remaining",
    "reset",
    "domain",
    "failure_mode",
    "p",
    "starter",
];

const WORDS: &[&str] = &[
    "",
    "RSA",
    "EC",
    "OKP",
    "oct",
    "P-256",
    "P-384",
    "Ed25519",
    "HS256",
    "RS256",
    "PS512",
    "ES256",
    "EdDSA",
    "none",
    "local",
    "global",
    "deny",
    "allow",
    "jwt",
    "either",
    "both",
    "subscription_key",
    "pass",
    "reject",
    "/",
    "/a",
    "/a/",
    "a",
    "p",
    "starter",
    "x-h",
    "{consumer}",
    "{product}",
    "{operation}",
    "{claim:oid}",
    "{claim:",
    "{",
    "}",
    "AQAB",
    "sig",
    "enc",
    "GET",
    "post",
    "rls",
    "https://login.example/.well-known/openid-configuration",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "sha256:",
    "Ocp-Apim-Subscription-Key",
    "x-ratelimit-limit",
    "azp",
    "roles",
    " ",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0u64, 1, 2, 60, 1000, 100_000, 100_001, 31_536_001])
            .prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A configuration that loads and uses every section.
fn valid_config() -> &'static Value {
    static CONFIG: OnceLock<Value> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut jwt = jwt_section();
        jwt["default_product"] = json!("starter");
        jwt["max_dynamic_consumers"] = json!(4);
        jwt["clock_skew_s"] = json!(30);
        jwt["token_cache_size"] = json!(16);
        let config = json!({
            "subscription_key": { "header": "X-Key", "query": "key" },
            "products": {
                "starter": { "rate_limit": { "calls": 5, "renewal_period_s": 60 },
                             "quota": { "calls": 100, "renewal_period_s": 86400 } },
                "partner": { "rate_limit": { "calls": 50, "renewal_period_s": 60, "scope": "global" } }
            },
            "consumers": [
                { "id": "flow", "product": "starter",
                  "keys": [KeyHash::of(b"k1").to_config_string()], "jwt_client_ids": ["client-1"] },
                { "id": "portal", "product": "partner", "keys": [KeyHash::of(b"k2").to_config_string()] }
            ],
            "jwt": jwt,
            "operations": [
                { "name": "validate", "methods": ["POST"], "path": "/validate", "auth": "either",
                  "products": ["starter"], "rewrite": "/api/validate",
                  "request_headers": { "set": { "x-consumer": "{consumer}", "x-oid": "{claim:oid}" },
                                       "append": { "x-via": "tollgate" }, "remove": ["x-debug"] },
                  "response_headers": { "set": { "x-product": "{product}" } } },
                { "name": "both", "path_prefix": "/both", "auth": "both" },
                { "name": "key", "path_prefix": "/", "auth": "subscription_key" }
            ],
            "unmatched": "pass",
            "rate_limit_headers": { "limit": "x-rl-limit", "remaining": "x-rl-remaining", "reset": "x-rl-reset" },
            "global_limits": { "cluster": "rls", "domain": "tollgate", "timeout_ms": 50, "failure_mode": "local" }
        });
        if let Err(err) = Plan::from_json(config.to_string().as_bytes()) {
            panic!("{err}");
        }
        config
    })
}

/// Every place in `value`, as a list of steps (object key or array index).
fn places(value: &Value, at: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    found.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                at.push(Step::Key(key.clone()));
                places(child, at, found);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Step::Index(i));
                places(child, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn at_mut<'v>(value: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    AddMember(String, Value),
}

fn mutated_config() -> impl Strategy<Value = Value> {
    let mutation = prop_oneof![
        4 => tree().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        1 => (key(), tree()).prop_map(|(k, v)| Mutation::AddMember(k, v)),
    ];
    (prop::collection::vec((any::<Index>(), mutation), 1..4)).prop_map(|edits| {
        let mut config = valid_config().clone();
        for (index, mutation) in edits {
            let mut found = Vec::new();
            places(&config, &mut Vec::new(), &mut found);
            let path = index.get(&found).clone();
            match mutation {
                Mutation::Replace(new) => *at_mut(&mut config, &path) = new,
                Mutation::Remove => match path.split_last() {
                    Some((Step::Key(k), parent)) => {
                        if let Value::Object(map) = at_mut(&mut config, parent) {
                            map.remove(k);
                        }
                    }
                    Some((Step::Index(i), parent)) => {
                        if let Value::Array(items) = at_mut(&mut config, parent) {
                            items.remove(*i);
                        }
                    }
                    None => config = Value::Null,
                },
                Mutation::AddMember(k, v) => {
                    if let Value::Object(map) = at_mut(&mut config, &path) {
                        map.insert(k, v);
                    }
                }
            }
        }
        config
    })
}

/// A loaded plan is used: counters prepared, the key fetch made, a few requests decided.
fn use_plan(plan: &Plan) {
    static TOKEN: OnceLock<String> = OnceLock::new();
    let token = TOKEN.get_or_init(|| rs256(claims()));
    let store = MemoryStore::default();
    let _ = plan.prepare_counters(&store);
    let _ = plan.key_fetch();
    let mut tokens = TokenCache::new(plan.token_cache_size().min(64), [1; 16]);
    let bearer = format!("Bearer {token}").into_bytes();
    for (method, path, extra) in [
        ("GET", "/", None),
        ("POST", "/validate?key=k1&a=b", None),
        ("POST", "/validate", Some(("authorization", bearer.clone()))),
        ("GET", "/both/x", Some(("x-key", b"k2".to_vec()))),
        ("GET", "/both/x", Some(("authorization", bearer.clone()))),
    ] {
        let mut headers = vec![
            (":method".to_string(), method.as_bytes().to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":authority".to_string(), b"api.example".to_vec()),
        ];
        headers.extend(extra.map(|(n, v)| (n.to_string(), v)));
        let mut env = RequestEnv::new(&FixedClock(1_800_000_000_000), &mut tokens, &store);
        let _ = decide(plan, &headers, &mut env);
    }
}

fn load(bytes: &[u8]) {
    if let Ok(plan) = Plan::from_json(bytes) {
        use_plan(&plan);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary JSON trees, mostly made of the configuration's own words.
    #[test]
    fn from_json_never_panics_on_json_trees(value in tree()) {
        load(value.to_string().as_bytes());
    }

    /// The full configuration with subtrees replaced, removed or added: deep checks run.
    #[test]
    fn from_json_never_panics_on_mutated_configurations(value in mutated_config()) {
        load(value.to_string().as_bytes());
    }

    /// Arbitrary bytes.
    #[test]
    fn from_json_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load(&bytes);
    }

    /// The configuration's text with bytes overwritten, inserted or cut.
    #[test]
    fn from_json_never_panics_on_damaged_text(
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut bytes = valid_config().to_string().into_bytes();
        for (index, byte, kind) in edits {
            let at = index.index(bytes.len());
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
            if bytes.is_empty() {
                break;
            }
        }
        load(&bytes);
    }
}

#[test]
fn mutations_still_load_sometimes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = mutated_config();
    let loaded = (0..300)
        .filter(|_| {
            let value = strategy.new_tree(&mut runner).unwrap().current();
            Plan::from_json(value.to_string().as_bytes()).is_ok()
        })
        .count();
    // Some mutations keep a loadable plan (so `use_plan` runs), most do not.
    assert!((1..300).contains(&loaded), "{loaded} of 300 loaded");
}
