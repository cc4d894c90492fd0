//! The policy's own cost per request, without Envoy: µs per `decide` on the bench's three
//! paths (subscription key among 1,000 consumers, JWT cache hit, JWT RS256 cache miss), and
//! the RSA signature alone on the same tokens, so a miss splits into signature and the rest.
//! Then the key path again with 300 `path_template` operations against the demo's five
//! path/prefix operations, and the operation lookup alone in both; and the key path without an
//! `ip_filter`, and with one of 10 and one of 5,000 prefixes (a large service tag) that admits
//! the caller.
//! Meant for wasm under V8, as Envoy runs the filter; the fixture (config and signed tokens)
//! is made natively, because signing 2,000 tokens in wasm takes long:
//!
//! ```text
//! cargo run --release -p tollgate-core --example decide_speed -- make target/decide.json
//! cargo build --release --target wasm32-wasip1 -p tollgate-core --example decide_speed
//! node --no-liftoff crates/core/examples/verify_speed.mjs \
//!     target/wasm32-wasip1/release/examples/decide_speed.wasm run target/decide.json [rounds]
//! ```
//!
//! Not a test: no timing is asserted anywhere.

use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error;
use std::hint::black_box;
use std::time::Instant;
use tollgate_core::{
    decide, CounterStore, KnownKeys, Plan, RequestEnv, SourceAddress, StoreError, TokenCache,
};

// The filter's own RSA code, compiled in here (the crate keeps its modules private).
#[allow(dead_code)]
#[path = "../src/jwt/rsa.rs"]
mod rsa;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const CACHE: usize = 1024;
const NOW_MS: u64 = 1_800_000_000_000;
const KEY: &str = "bench-subscription-key";

/// The fixture: signing is native work (2,000 RSA signatures take long in wasm).
#[cfg(not(target_family = "wasm"))]
mod fixture {
    use super::{Result, KEY};
    use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    use jwt_simple::prelude::*;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    const ISSUER: &str = "https://login.microsoftonline.com/bench-tenant/v2.0";
    const AUDIENCE: &str = "api://bench";
    const CLIENT: &str = "bench-client";
    /// More distinct tokens than the 1,024-entry cache holds, so cycling through them misses.
    const FRESH_TOKENS: usize = 2000;

    fn sha256_ref(key: &str) -> String {
        let hex: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    }

    /// The bench's two plugin configurations in one: `/items` by key, `/claims` by JWT.
    fn config(jwks: Value) -> Value {
        let mut consumers = vec![
            json!({"id": "bench", "product": "starter", "keys": [sha256_ref(KEY)]}),
            json!({"id": "bench-app", "product": "starter", "jwt_client_ids": [CLIENT]}),
        ];
        consumers.extend((0..998).map(|n| {
            json!({"id": format!("consumer-{n}"), "product": "starter",
                   "keys": [sha256_ref(&format!("other-{n}"))]})
        }));
        json!({
            "products": {"starter": {"rate_limit": {"calls": 1_000_000_000, "renewal_period_s": 60}}},
            "consumers": consumers,
            "jwt": {"issuers": [ISSUER], "audiences": [AUDIENCE], "algorithms": ["RS256"],
                    "jwks": jwks, "claims_to_headers": {"oid": "x-user-oid"}},
            "operations": [
                {"name": "items", "methods": ["GET"], "path_prefix": "/items",
                 "auth": "subscription_key", "rewrite": "/api/v1/items",
                 "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
                {"name": "claims", "methods": ["GET"], "path_prefix": "/claims", "auth": "jwt",
                 "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
            ],
        })
    }

    pub fn make(path: &str) -> Result<()> {
        let b64 = |bytes: &[u8]| Base64UrlSafeNoPadding::encode_to_string(bytes);
        let key = RS256KeyPair::generate(2048)?.with_key_id("bench-key");
        let components = key.public_key().to_components();
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "bench-key", "use": "sig",
                                     "n": b64(&components.n)?, "e": b64(&components.e)?}]});
        let tokens = (0..FRESH_TOKENS)
            .map(|n| {
                let custom = json!({"azp": CLIENT, "oid": format!("user-{n}"),
                                    "tid": "bench-tenant", "ver": "2.0", "scp": "Items.Read"});
                let claims = Claims::with_custom_claims(custom, Duration::from_days(3650))
                    .with_issuer(ISSUER)
                    .with_audience(AUDIENCE);
                key.sign(claims).map_err(Into::into)
            })
            .collect::<Result<Vec<String>>>()?;
        let fixture = json!({"config": config(jwks), "tokens": tokens});
        std::fs::write(path, serde_json::to_vec(&fixture)?)?;
        println!("{path}: {FRESH_TOKENS} tokens");
        Ok(())
    }
}

#[cfg(not(target_family = "wasm"))]
use fixture::make;

#[cfg(target_family = "wasm")]
fn make(_path: &str) -> Result<()> {
    Err("make the fixture natively".into())
}

/// Shared data as Envoy keeps it: one value and CAS number per key.
#[derive(Default)]
struct MemoryStore(RefCell<HashMap<String, (Vec<u8>, u32)>>);

impl CounterStore for MemoryStore {
    fn load(&self, key: &str) -> std::result::Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(self
            .0
            .borrow()
            .get(key)
            .map_or((None, None), |(value, cas)| {
                (Some(value.clone()), Some(*cas))
            }))
    }

    fn store(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> std::result::Result<(), StoreError> {
        let mut entries = self.0.borrow_mut();
        let next = entries.get(key).map_or(1, |(_, held)| held + 1);
        if let (Some(cas), Some((_, held))) = (cas, entries.get(key)) {
            if cas != *held {
                return Err(StoreError::CasMismatch);
            }
        }
        entries.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}

fn request(path: &str, header: (&str, String)) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"bench.local".to_vec()),
        ("user-agent".into(), b"wrk".to_vec()),
        ("accept".into(), b"*/*".to_vec()),
        (header.0.into(), header.1.into_bytes()),
    ]
}

/// µs per call: the best and the median of batches (the machine is shared).
fn time(label: &str, calls: usize, mut call: impl FnMut(usize)) {
    const BATCHES: usize = 10;
    let per_batch = calls.div_ceil(BATCHES).max(1);
    let mut round = 0;
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                call(round);
                round += 1;
            }
            start.elapsed().as_secs_f64() * 1e6 / per_batch as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    let best = batches.first().copied().unwrap_or_default();
    let median = batches.get(BATCHES / 2).copied().unwrap_or_default();
    println!("{label}: {best:.2} µs (median {median:.2})");
}

fn forwarded(decision: &tollgate_core::Decision) -> bool {
    matches!(decision.verdict, tollgate_core::Verdict::Forward(_))
}

fn run(path: &str, rounds: usize) -> Result<()> {
    let fixture: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let config = serde_json::to_vec(fixture.get("config").ok_or("no config")?)?;
    let tokens: Vec<String> =
        serde_json::from_value(fixture.get("tokens").cloned().ok_or("no tokens")?)?;
    if tokens.is_empty() {
        return Err("the fixture holds no tokens".into());
    }
    let plan = Plan::from_json(&config).map_err(|e| e.to_string())?;
    let store = MemoryStore::default();
    let mut known = KnownKeys::new([3; 16]);
    let mut cache = TokenCache::new(CACHE, [7; 16]);
    println!(
        "{} limbs of {} bits",
        std::env::consts::ARCH,
        crypto_bigint::Limb::BITS
    );

    let key_request = request("/items/42", ("ocp-apim-subscription-key", KEY.to_owned()));
    let bearer = |n: usize| {
        let token = tokens.get(n % tokens.len()).cloned().unwrap_or_default();
        request("/claims/42", ("authorization", format!("Bearer {token}")))
    };
    let mut decide_with = |headers: &[(String, Vec<u8>)], known: Option<&mut KnownKeys>| {
        let mut env = RequestEnv {
            now_ms: NOW_MS,
            tokens: &mut cache,
            counters: &store,
            fetched_keys: None,
            known_keys: known,
            body_follows: false,
            source_address: None,
        };
        decide(&plan, headers, &mut env)
    };
    if !forwarded(&decide_with(&key_request, Some(&mut known)))
        || !forwarded(&decide_with(&bearer(0), None))
    {
        return Err("the fixture's requests are not admitted".into());
    }

    time("key + local limit, decide", rounds * 20, |_| {
        black_box(decide_with(black_box(&key_request), Some(&mut known)));
    });
    let hit = bearer(0);
    time("JWT cache hit, decide", rounds * 20, |_| {
        black_box(decide_with(black_box(&hit), None));
    });
    let misses: Vec<_> = (0..tokens.len()).map(bearer).collect();
    time("JWT RS256 cache miss, decide", rounds, |n| {
        let request = misses
            .get(n % misses.len())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        black_box(decide_with(black_box(request), None));
    });

    operations_speed(&fixture, rounds, &store)?;
    ip_filter_speed(&fixture, rounds, &store)?;

    // The signature alone, on the same tokens, with the key as the plan loads it.
    let jwk = fixture.pointer("/config/jwt/jwks/keys/0").ok_or("no key")?;
    let decode = |text: Option<&Value>| -> Result<Vec<u8>> {
        use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
        let text = text.and_then(Value::as_str).ok_or("not base64url text")?;
        Ok(Base64UrlSafeNoPadding::decode_to_vec(text, None)?)
    };
    let key = rsa::RsaPublicKey::new(&decode(jwk.get("n"))?, &decode(jwk.get("e"))?, 2048, 8192)?;
    let signed: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .filter_map(|token| {
            let (input, signature) = token.rsplit_once('.')?;
            let signature = decode(Some(&Value::from(signature))).ok()?;
            Some((input.as_bytes().to_vec(), signature))
        })
        .collect();
    if signed.is_empty() {
        return Err("no token of the fixture has a signature".into());
    }
    time("RS256 signature alone", rounds, |n| {
        if let Some((input, signature)) = signed.get(n % signed.len()) {
            black_box(key.verify(rsa::Hash::Sha256, rsa::Padding::Pkcs1v15, input, signature));
        }
    });
    Ok(())
}

/// The five operations of the demo before URL templates: exact paths and prefixes.
fn five_operations() -> Value {
    let op = |name: &str, methods: Value, key: &str, path: &str| {
        let mut op = serde_json::Map::new();
        op.insert("name".into(), Value::from(name));
        op.insert("auth".into(), Value::from("subscription_key"));
        op.insert(
            "request_headers".into(),
            serde_json::json!({"set": {"x-consumer-id": "{consumer}"}}),
        );
        op.insert(key.into(), Value::from(path));
        if !methods.is_null() {
            op.insert("methods".into(), methods);
        }
        Value::Object(op)
    };
    Value::Array(vec![
        op("validate", serde_json::json!(["POST"]), "path", "/validate"),
        op(
            "invoices",
            serde_json::json!(["GET"]),
            "path_prefix",
            "/invoices",
        ),
        op(
            "submit",
            serde_json::json!(["POST"]),
            "path_prefix",
            "/invoices",
        ),
        op("admin", Value::Null, "path_prefix", "/admin"),
        op("health", serde_json::json!(["GET"]), "path", "/healthz"),
    ])
}

/// 300 operations as `tollgate init` makes them for a FastAPI service of 100 resources:
/// list, read by id, and a sub-resource by id, each a URL template.
fn template_operations() -> Value {
    let mut ops = Vec::new();
    for n in 0..100 {
        for (name, method, template) in [
            ("list", "GET", format!("/resource{n}")),
            ("read", "GET", format!("/resource{n}/{{id}}")),
            ("attach", "POST", format!("/resource{n}/{{id}}/attachments")),
        ] {
            ops.push(
                serde_json::json!({"name": format!("{name}_{n}"), "methods": [method],
                "path_template": template, "rewrite": format!("/api/v1{template}"),
                "auth": "subscription_key",
                "request_headers": {"set": {"x-consumer-id": "{consumer}"}}}),
            );
        }
    }
    Value::Array(ops)
}

/// The key path with the fixture's 1,000 consumers and each operation list; the lookup alone.
fn operations_speed(fixture: &Value, rounds: usize, store: &MemoryStore) -> Result<()> {
    let key = ("ocp-apim-subscription-key", KEY.to_owned());
    for (label, operations, paths) in [
        (
            "5 path/prefix operations",
            five_operations(),
            ["/invoices/42", "/healthz"],
        ),
        (
            "300 template operations",
            template_operations(),
            ["/resource0/42", "/resource99/42/attachments"],
        ),
    ] {
        let mut config = fixture.get("config").cloned().ok_or("no config")?;
        let sections = config.as_object_mut().ok_or("config is no object")?;
        sections.insert("operations".into(), operations);
        sections.remove("jwt");
        let plan = Plan::from_json(&serde_json::to_vec(&config)?).map_err(|e| e.to_string())?;
        let mut known = KnownKeys::new([3; 16]);
        let mut cache = TokenCache::new(CACHE, [7; 16]);
        for path in paths {
            let method = if path.ends_with("attachments") {
                "POST"
            } else {
                "GET"
            };
            let mut headers = request(path, key.clone());
            if let Some(first) = headers.first_mut() {
                first.1 = method.as_bytes().to_vec();
            }
            let mut decide_once = || {
                let mut env = RequestEnv {
                    now_ms: NOW_MS,
                    tokens: &mut cache,
                    counters: store,
                    fetched_keys: None,
                    known_keys: Some(&mut known),
                    body_follows: false,
                    source_address: None,
                };
                decide(&plan, black_box(&headers), &mut env)
            };
            if !forwarded(&decide_once()) {
                return Err(format!("{label}: {method} {path} is not admitted").into());
            }
            time(
                &format!("{label}, key + local limit, {method} {path}, decide"),
                rounds * 20,
                |_| {
                    black_box(decide_once());
                },
            );
            time(
                &format!("{label}, {method} {path}, lookup alone"),
                rounds * 200,
                |_| {
                    black_box(plan.match_operation(black_box(method), black_box(path)));
                },
            );
        }
    }
    Ok(())
}

/// The caller as Envoy's `source.address` gives it.
struct Caller(&'static str);

impl SourceAddress for Caller {
    fn source_address(&self) -> Option<Vec<u8>> {
        Some(self.0.as_bytes().to_vec())
    }
}

/// 5,000 prefixes as `tools/bench.py` makes them: IPv4 /28s and IPv6 /48s, none touching the
/// next (so the filter searches 5,000 ranges), the caller's 127.0.0.1 in the middle.
fn service_tag_prefixes(count: usize) -> Vec<String> {
    let ipv4 = count * 4 / 5;
    let mut prefixes: Vec<String> = (0..ipv4)
        .map(|n| {
            format!(
                "20.{}.{}.{}/28",
                n >> 10 & 0xff,
                n >> 2 & 0xff,
                (n & 3) * 64
            )
        })
        .chain(
            (0..count.saturating_sub(ipv4 + 1))
                .map(|n| format!("2603:{:x}:{:x}::/48", 0x1000 + (n >> 8), (n & 0xff) * 2)),
        )
        .collect();
    prefixes.insert(prefixes.len() / 2, "127.0.0.1/32".to_string());
    prefixes
}

/// The key path with the fixture's 1,000 consumers, without a filter and with a short and a
/// long one.
fn ip_filter_speed(fixture: &Value, rounds: usize, store: &MemoryStore) -> Result<()> {
    let caller = Caller("127.0.0.1:40000");
    let key_request = request("/items/42", ("ocp-apim-subscription-key", KEY.to_owned()));
    for (label, filter) in [
        ("no ip_filter", None),
        (
            "ip_filter of 10 prefixes",
            Some(serde_json::json!({ "allow": service_tag_prefixes(10) })),
        ),
        (
            "ip_filter of 5,000 prefixes",
            Some(serde_json::json!({ "allow": service_tag_prefixes(5000) })),
        ),
    ] {
        let mut config = fixture.get("config").cloned().ok_or("no config")?;
        let sections = config.as_object_mut().ok_or("config is no object")?;
        sections.remove("jwt");
        sections.insert("operations".into(), five_operations());
        if let Some(filter) = filter {
            sections.insert("ip_filter".into(), filter);
        }
        let plan = Plan::from_json(&serde_json::to_vec(&config)?).map_err(|e| e.to_string())?;
        let mut known = KnownKeys::new([3; 16]);
        let mut cache = TokenCache::new(CACHE, [7; 16]);
        let mut headers = key_request.clone();
        if let Some(path) = headers.get_mut(1) {
            path.1 = b"/invoices/42".to_vec();
        }
        let mut decide_once = || {
            let mut env = RequestEnv {
                now_ms: NOW_MS,
                tokens: &mut cache,
                counters: store,
                fetched_keys: None,
                known_keys: Some(&mut known),
                source_address: Some(&caller),
                body_follows: false,
            };
            decide(&plan, black_box(&headers), &mut env)
        };
        if !forwarded(&decide_once()) {
            return Err(format!("{label}: the caller is not admitted").into());
        }
        time(
            &format!("key + local limit, GET /invoices/42, {label}, decide"),
            rounds * 20,
            |_| {
                black_box(decide_once());
            },
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["make", path] => make(path),
        ["run", path] => run(path, 400),
        ["run", path, rounds] => run(path, rounds.parse()?),
        _ => Err("usage: decide_speed make FILE | run FILE [rounds]".into()),
    }
}
