use super::*;
use crate::global_limits::proto;
use crate::jwt::token_cache::TokenCache;
use crate::pipeline::{decide, RequestEnv};
use crate::rewrite::HeaderEdit;
use crate::subscription::KeyHash;
use crate::testing::{FixedClock, MemoryStore};
use prost::Message;
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;

fn plan(failure_mode: &str) -> Plan {
    let config = json!({
        "global_limits": { "cluster": "tollgate_rls", "failure_mode": failure_mode },
        "products": {
            "partner": {
                "rate_limit": { "calls": 2, "renewal_period_s": 60, "scope": "global" },
                "quota": { "calls": 10, "renewal_period_s": 86400 }
            }
        },
        "consumers": [
            { "id": "invoice-flow", "product": "partner",
              "keys": [KeyHash::of(b"key").to_config_string()] }
        ],
        "operations": [{ "name": "op", "path": "/op" }]
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn check(plan: &Plan, store: &MemoryStore) -> GlobalCheck {
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/op".to_vec()),
        ("ocp-apim-subscription-key".into(), b"key".to_vec()),
    ];
    let mut tokens = TokenCache::default();
    let mut env = RequestEnv::new(&FixedClock(NOW_MS), &mut tokens, store);
    match decide(plan, &headers, &mut env).verdict {
        Verdict::AskGlobal(check) => *check,
        other => panic!("expected a global check, got {other:?}"),
    }
}

fn ok_answer(remaining: u32) -> Vec<u8> {
    proto::RateLimitResponse {
        overall_code: proto::CODE_OK,
        statuses: vec![proto::DescriptorStatus {
            code: proto::CODE_OK,
            current_limit: Some(proto::RateLimit {
                requests_per_unit: 2,
                unit: 2,
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(proto::Duration {
                seconds: 40,
                nanos: 0,
            }),
        }],
    }
    .encode_to_vec()
}

fn header(verdict: &Verdict, name: &str) -> Option<String> {
    match verdict {
        Verdict::Forward(forward) => forward.response_edits.iter().find_map(|edit| match edit {
            HeaderEdit::Set(n, v) if n == name => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    }
}

fn denial(verdict: &Verdict) -> (u32, Option<String>) {
    match verdict {
        Verdict::Deny(denial) => (
            denial.status,
            denial
                .headers
                .iter()
                .find(|(n, _)| *n == "retry-after")
                .map(|(_, v)| v.clone()),
        ),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn the_request_asks_the_global_limit_after_counting_the_local_quota() {
    let plan = plan("local");
    let store = MemoryStore::default();
    let check = check(&plan, &store);
    let request = proto::RateLimitRequest::decode(check.message.as_slice()).unwrap();
    assert_eq!(request.domain, "tollgate");
    assert_eq!(
        request.descriptors.len(),
        1,
        "only the global limit is asked"
    );
    assert_eq!(store.len(), 1, "the local quota was counted");
}

#[test]
fn an_admitted_answer_forwards_with_the_tightest_headers() {
    let plan = plan("local");
    let store = MemoryStore::default();
    let settled = settle(
        &plan,
        check(&plan, &store),
        RlsAnswer::Message(&ok_answer(1)),
        &store,
        NOW_MS,
    );
    assert_eq!(settled.failure, None);
    // Global: 1 of 2 left; local quota: 9 of 10 left. The global one is tighter.
    assert_eq!(
        header(&settled.verdict, "x-ratelimit-remaining").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(&settled.verdict, "x-ratelimit-limit").as_deref(),
        Some("2")
    );
    assert_eq!(
        header(&settled.verdict, "x-ratelimit-reset").as_deref(),
        Some("40")
    );
}

#[test]
fn over_limit_is_apims_429_with_the_services_reset() {
    let plan = plan("local");
    let store = MemoryStore::default();
    let over = proto::RateLimitResponse {
        overall_code: proto::CODE_OVER_LIMIT,
        statuses: vec![proto::DescriptorStatus {
            code: proto::CODE_OVER_LIMIT,
            current_limit: None,
            limit_remaining: 0,
            duration_until_reset: Some(proto::Duration {
                seconds: 12,
                nanos: 1,
            }),
        }],
    }
    .encode_to_vec();
    let settled = settle(
        &plan,
        check(&plan, &store),
        RlsAnswer::Message(&over),
        &store,
        NOW_MS,
    );
    assert_eq!(denial(&settled.verdict), (429, Some("13".into())));
    assert_eq!(settled.failure, None);
}

#[test]
fn failure_mode_local_counts_the_global_limit_here() {
    let plan = plan("local");
    let store = MemoryStore::default();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let settled = settle(
            &plan,
            check(&plan, &store),
            RlsAnswer::Status(14),
            &store,
            NOW_MS,
        );
        assert_eq!(settled.failure, Some(ServiceFailure::Status(14)));
        statuses.push(match &settled.verdict {
            Verdict::Forward(_) => 200,
            other => denial(other).0,
        });
    }
    assert_eq!(
        statuses,
        vec![200, 200, 429],
        "calls: 2 held by this process"
    );
    let (_, fallback) = store.load("tollgate/g/invoice-flow").unwrap();
    assert!(fallback.is_some(), "counted in the fallback entry");
}

#[test]
fn failure_mode_deny_answers_503_and_allow_admits() {
    let plan_deny = plan("deny");
    let store = MemoryStore::default();
    let settled = settle(
        &plan_deny,
        check(&plan_deny, &store),
        RlsAnswer::NotDispatched,
        &store,
        NOW_MS,
    );
    assert_eq!(denial(&settled.verdict), (503, Some("1".into())));
    match &settled.verdict {
        Verdict::Deny(denial) => assert_eq!(
            serde_json::from_str::<Value>(&denial.body()).unwrap(),
            json!({"statusCode": 503, "message": "Rate limit service unavailable. Try again in 1 seconds."})
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(settled.failure, Some(ServiceFailure::NotDispatched));

    let plan_allow = plan("allow");
    for _ in 0..5 {
        let settled = settle(
            &plan_allow,
            check(&plan_allow, &store),
            RlsAnswer::Status(4),
            &store,
            NOW_MS,
        );
        assert!(matches!(settled.verdict, Verdict::Forward(_)));
        assert_eq!(settled.failure, Some(ServiceFailure::Status(4)));
    }
}

#[test]
fn a_garbled_answer_is_a_failure_too() {
    let plan = plan("deny");
    let store = MemoryStore::default();
    let settled = settle(
        &plan,
        check(&plan, &store),
        RlsAnswer::Message(&[0xff, 0x00]),
        &store,
        NOW_MS,
    );
    assert_eq!(denial(&settled.verdict).0, 503);
    assert_eq!(settled.failure, Some(ServiceFailure::Undecodable));
}

#[test]
fn dynamic_consumers_ask_under_their_own_id_and_fall_back_to_their_pool() {
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE";
    let mut config: Value = json!({
        "global_limits": { "cluster": "tollgate_rls" },
        "products": { "p": { "rate_limit": { "calls": 1, "renewal_period_s": 60, "scope": "global" } } },
        "jwt": {
            "algorithms": ["HS256"],
            "jwks": { "keys": [{ "kty": "oct", "kid": "h", "k": secret }] },
            "default_product": "p",
            "max_dynamic_consumers": 4
        },
        "operations": [{ "name": "op", "path": "/op", "auth": "jwt" }]
    });
    let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    assert!(plan
        .counter_entries()
        .iter()
        .any(|key| key.starts_with("tollgate/dpg/")));
    config["global_limits"]["failure_mode"] = json!("deny");
    let deny = Plan::from_json(config.to_string().as_bytes()).unwrap();
    assert!(
        deny.counter_entries().is_empty(),
        "no fallback counters to keep"
    );
}

fn over_quota() -> Vec<u8> {
    proto::RateLimitResponse {
        overall_code: proto::CODE_OVER_LIMIT,
        statuses: vec![proto::DescriptorStatus {
            code: proto::CODE_OVER_LIMIT,
            current_limit: None,
            limit_remaining: 0,
            duration_until_reset: Some(proto::Duration {
                seconds: 5_000,
                nanos: 0,
            }),
        }],
    }
    .encode_to_vec()
}

#[test]
fn a_request_the_global_quota_refuses_gives_its_local_count_back() {
    // Local rate limit 3 an hour, global quota (counted by the service).
    let config = json!({
        "global_limits": { "cluster": "tollgate_rls", "failure_mode": "deny" },
        "products": { "p": {
            "rate_limit": { "calls": 3, "renewal_period_s": 3600 },
            "quota": { "calls": 2, "renewal_period_s": 86400, "scope": "global" } } },
        "consumers": [{ "id": "c", "product": "p", "keys": [KeyHash::of(b"key").to_config_string()] }],
        "operations": [{ "name": "op", "path": "/op" }]
    });
    let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    let store = MemoryStore::default();
    let mut statuses = Vec::new();
    for n in 0..6 {
        let answer = if n < 2 { quota_ok() } else { over_quota() };
        let settled = settle(
            &plan,
            check(&plan, &store),
            RlsAnswer::Message(&answer),
            &store,
            NOW_MS,
        );
        statuses.push(match &settled.verdict {
            Verdict::Forward(_) => 200,
            other => denial(other).0,
        });
    }
    // Every refusal is the quota's 403: the refused requests did not use up the local rate
    // limit (which `check` would otherwise have refused with 429 from the fourth request on).
    assert_eq!(statuses, vec![200, 200, 403, 403, 403, 403]);
    // The service failing under `deny` gives the count back too.
    for _ in 0..4 {
        let settled = settle(
            &plan,
            check(&plan, &store),
            RlsAnswer::Status(14),
            &store,
            NOW_MS,
        );
        assert_eq!(denial(&settled.verdict).0, 503);
    }
}

fn quota_ok() -> Vec<u8> {
    proto::RateLimitResponse {
        overall_code: proto::CODE_OK,
        statuses: vec![proto::DescriptorStatus {
            code: proto::CODE_OK,
            current_limit: None,
            limit_remaining: 1,
            duration_until_reset: None,
        }],
    }
    .encode_to_vec()
}
