//! The filter's side of the protocol (tollgate-core, with its hand-written prost messages)
//! against Envoy's own RLS v3 types and against this service counting in a real Redis: the
//! request the filter sends is what Envoy's types read, and what the service answers is what
//! the filter understands.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use envoy_types::pb::envoy::service::ratelimit::v3::{
    rate_limit_response::{Code as RlsCode, DescriptorStatus},
    RateLimitRequest, RateLimitResponse,
};
use envoy_types::pb::google::protobuf::Duration;
use prost::Message;
use std::cell::RefCell;
use std::collections::HashMap;
use tollgate_core::{
    decide, settle, Clock, CounterStore, Plan, RequestEnv, RlsAnswer, StoreError, TokenCache,
    Verdict,
};

/// Proxy-wasm shared data, in memory.
#[derive(Default)]
struct Store(RefCell<HashMap<String, (Vec<u8>, u32)>>);

impl CounterStore for Store {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(match self.0.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.0.borrow_mut();
        let next = entries.get(key).map_or(1, |(_, c)| c + 1);
        if let (Some((_, current)), Some(cas)) = (entries.get(key), cas) {
            if *current != cas {
                return Err(StoreError::CasMismatch);
            }
        }
        entries.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

struct Now(u64);

impl Clock for Now {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

const KEY: &str = "interop-key";

fn plan() -> Plan {
    let hash = tollgate_core::KeyHash::of(KEY.as_bytes()).to_config_string();
    let config = serde_json::json!({
        "global_limits": { "cluster": "tollgate_rls", "domain": "interop" },
        "products": { "partner": {
            "rate_limit": { "calls": 3, "renewal_period_s": 86400, "scope": "global" },
            "quota": { "calls": 5, "renewal_period_s": 2592000, "scope": "global" } } },
        "consumers": [{ "id": "partner-app", "product": "partner", "keys": [hash] }],
        "operations": [{ "name": "op", "path": "/op" }]
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

/// The filter's verdict for one request: a global check, its request decoded by Envoy's types.
fn ask(plan: &Plan, store: &Store) -> (tollgate_core::GlobalCheck, RateLimitRequest) {
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/op".to_vec()),
        (
            "ocp-apim-subscription-key".to_string(),
            KEY.as_bytes().to_vec(),
        ),
    ];
    let mut tokens = TokenCache::default();
    let now = Now(now_s() * 1000);
    let mut env = RequestEnv::new(&now, &mut tokens, store);
    match decide(plan, &headers, &mut env).verdict {
        Verdict::AskGlobal(check) => {
            let request = RateLimitRequest::decode(check.message.as_slice()).unwrap();
            (*check, request)
        }
        other => panic!("expected a global check, got {other:?}"),
    }
}

#[test]
fn envoys_types_read_the_filters_request() {
    let (_, request) = ask(&plan(), &Store::default());
    assert_eq!(request.domain, "interop");
    assert_eq!(request.hits_addend, 1);
    // (entries, requests_per_unit, unit) per descriptor
    type Described = (Vec<(String, String)>, u32, i32);
    let described: Vec<Described> = request
        .descriptors
        .iter()
        .map(|d| {
            let entries = d
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            let limit = d.limit.as_ref().unwrap();
            (entries, limit.requests_per_unit, limit.unit)
        })
        .collect();
    let entries = |limit: &str| {
        vec![
            ("consumer".to_string(), "partner-app".to_string()),
            ("limit".to_string(), limit.to_string()),
        ]
    };
    // DAY = 4, MONTH = 5 in envoy.type.v3.RateLimitUnit.
    assert_eq!(
        described,
        vec![(entries("rate_limit"), 3, 4), (entries("quota"), 5, 5)]
    );
}

#[test]
fn the_filter_reads_envoys_types_answer() {
    let plan = plan();
    let store = Store::default();
    let status = |code: RlsCode, remaining: u32, reset_s: i64| DescriptorStatus {
        code: code as i32,
        limit_remaining: remaining,
        duration_until_reset: Some(Duration {
            seconds: reset_s,
            nanos: 0,
        }),
        ..Default::default()
    };
    let over = RateLimitResponse {
        overall_code: RlsCode::OverLimit as i32,
        statuses: vec![
            status(RlsCode::Ok, 1, 100),
            status(RlsCode::OverLimit, 0, 200),
        ],
        ..Default::default()
    }
    .encode_to_vec();
    let (check, _) = ask(&plan, &store);
    let settled = settle(
        &plan,
        check,
        RlsAnswer::Message(&over),
        &store,
        now_s() * 1000,
    );
    match settled.verdict {
        Verdict::Deny(denial) => {
            assert_eq!(denial.status, 403, "the quota is the limit over");
            assert!(denial
                .headers
                .iter()
                .any(|(n, v)| *n == "retry-after" && v == "200"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_filters_requests_are_counted_by_the_service_and_its_answers_settled() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let plan = plan();
    let store = Store::default();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let (check, request) = ask(&plan, &store);
        let answer = client
            .should_rate_limit(request)
            .await
            .unwrap()
            .into_inner();
        let message = answer.encode_to_vec();
        let settled = settle(
            &plan,
            check,
            RlsAnswer::Message(&message),
            &store,
            now_s() * 1000,
        );
        assert_eq!(settled.failure, None);
        outcomes.push(match settled.verdict {
            Verdict::Forward(forward) => {
                let remaining = forward
                    .response_edits
                    .iter()
                    .find_map(|edit| match edit {
                        tollgate_core::HeaderEdit::Set(name, value)
                            if name == "x-ratelimit-remaining" =>
                        {
                            Some(value.clone())
                        }
                        _ => None,
                    })
                    .unwrap();
                format!("200 remaining {remaining}")
            }
            Verdict::Deny(denial) => format!("{}", denial.status),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(
        outcomes,
        vec![
            "200 remaining 2",
            "200 remaining 1",
            "200 remaining 0",
            "429"
        ]
    );
}
