use super::*;
use crate::config::GlobalLimitsConfig;

const NOW_MS: u64 = 1_800_000_030_500;

fn limit(calls: u64, period: u64) -> Limit {
    Limit {
        calls,
        renewal_period_s: period,
    }
}

fn both() -> Vec<Asked> {
    asked(&Limits {
        rate: Some(limit(100, 60)),
        quota: Some(limit(50_000, 2_592_000)),
    })
}

fn duration(seconds: i64, nanos: i32) -> Option<proto::Duration> {
    Some(proto::Duration { seconds, nanos })
}

fn status(
    code: i32,
    calls: u32,
    remaining: u32,
    reset: Option<proto::Duration>,
) -> proto::DescriptorStatus {
    proto::DescriptorStatus {
        code,
        current_limit: Some(proto::RateLimit {
            requests_per_unit: calls,
            unit: 2,
        }),
        limit_remaining: remaining,
        duration_until_reset: reset,
    }
}

fn answer(overall: i32, statuses: Vec<proto::DescriptorStatus>) -> Vec<u8> {
    proto::RateLimitResponse {
        overall_code: overall,
        statuses,
    }
    .encode_to_vec()
}

#[test]
fn the_section_has_defaults_and_refuses_what_cannot_work() {
    let config = |cluster: &str| GlobalLimitsConfig {
        cluster: cluster.into(),
        domain: None,
        timeout_ms: None,
        failure_mode: None,
    };
    let compiled = GlobalLimits::compile(config("tollgate_rls")).unwrap();
    assert_eq!(
        compiled,
        GlobalLimits {
            cluster: "tollgate_rls".into(),
            domain: "tollgate".into(),
            timeout_ms: 50,
            failure_mode: FailureMode::Local,
        }
    );
    assert_eq!(
        GlobalLimits::compile(config("")).unwrap_err().path(),
        "global_limits.cluster"
    );
    let mut bad = config("c");
    bad.domain = Some(String::new());
    assert_eq!(
        GlobalLimits::compile(bad).unwrap_err().path(),
        "global_limits.domain"
    );
    let mut long = config("c");
    long.domain = Some("d".repeat(MAX_DOMAIN_BYTES + 1));
    assert_eq!(
        GlobalLimits::compile(long).unwrap_err().path(),
        "global_limits.domain"
    );
    for timeout in [0, MAX_TIMEOUT_MS + 1] {
        let mut bad = config("c");
        bad.timeout_ms = Some(timeout);
        assert_eq!(
            GlobalLimits::compile(bad).unwrap_err().path(),
            "global_limits.timeout_ms"
        );
    }
}

#[test]
fn a_global_limit_needs_a_unit_and_a_u32_count() {
    for period in [1, 60, 3600, 86_400, 604_800, 2_592_000, 31_536_000] {
        assert!(check_limit("p", &limit(5, period)).is_ok(), "{period}");
    }
    for period in [2, 59, 120, 7200, 2_678_400] {
        let err = check_limit("products.x.quota", &limit(5, period)).unwrap_err();
        assert_eq!(err.path(), "products.x.quota.renewal_period_s", "{period}");
    }
    assert!(check_limit("p", &limit(u64::from(u32::MAX), 60)).is_ok());
    assert_eq!(
        check_limit("p", &limit(u64::from(u32::MAX) + 1, 60))
            .unwrap_err()
            .path(),
        "p.calls"
    );
}

#[test]
fn the_request_carries_one_descriptor_per_limit_with_its_override() {
    let message = request("tollgate", "invoice-flow", &both());
    let decoded = proto::RateLimitRequest::decode(message.as_slice()).unwrap();
    let entry = |key: &str, value: &str| proto::Entry {
        key: key.into(),
        value: value.into(),
    };
    assert_eq!(
        decoded,
        proto::RateLimitRequest {
            domain: "tollgate".into(),
            descriptors: vec![
                proto::RateLimitDescriptor {
                    entries: vec![
                        entry("consumer", "invoice-flow"),
                        entry("limit", "rate_limit")
                    ],
                    limit: Some(proto::RateLimitOverride {
                        requests_per_unit: 100,
                        unit: 2,
                    }),
                },
                proto::RateLimitDescriptor {
                    entries: vec![entry("consumer", "invoice-flow"), entry("limit", "quota")],
                    limit: Some(proto::RateLimitOverride {
                        requests_per_unit: 50_000,
                        unit: 5,
                    }),
                },
            ],
            hits_addend: 1,
        }
    );
    // The wire units of every period.
    let units: Vec<i32> = [1, 60, 3600, 86_400, 604_800, 2_592_000, 31_536_000]
        .into_iter()
        .filter_map(unit_of)
        .collect();
    assert_eq!(units, vec![1, 2, 3, 4, 7, 5, 6]);
}

#[test]
fn an_ok_answer_reports_the_tightest_limit() {
    let message = answer(
        proto::CODE_OK,
        vec![
            status(proto::CODE_OK, 100, 40, duration(29, 500_000_000)),
            status(proto::CODE_OK, 50_000, 12, duration(86_000, 0)),
        ],
    );
    assert_eq!(
        interpret(&both(), RlsAnswer::Message(&message), NOW_MS),
        Ok(Counted::Admitted(Some(RateHeaders {
            limit: 50_000,
            remaining: 12,
            reset_s: 86_000,
        })))
    );
    // Without a current limit, the asked one is reported; without a reset, the end of the
    // epoch-aligned window.
    let bare = answer(
        proto::CODE_OK,
        vec![proto::DescriptorStatus {
            code: proto::CODE_OK,
            current_limit: None,
            limit_remaining: 3,
            duration_until_reset: None,
        }],
    );
    let rate = asked(&Limits {
        rate: Some(limit(5, 60)),
        quota: None,
    });
    assert_eq!(
        interpret(&rate, RlsAnswer::Message(&bare), NOW_MS),
        Ok(Counted::Admitted(Some(RateHeaders {
            limit: 5,
            remaining: 3,
            reset_s: 30,
        })))
    );
}

#[test]
fn an_over_limit_answer_names_the_first_limit_over() {
    let over_quota = answer(
        proto::CODE_OVER_LIMIT,
        vec![
            status(proto::CODE_OK, 100, 40, duration(29, 0)),
            status(proto::CODE_OVER_LIMIT, 50_000, 0, duration(3_600, 1)),
        ],
    );
    assert_eq!(
        interpret(&both(), RlsAnswer::Message(&over_quota), NOW_MS),
        Ok(Counted::Over {
            kind: LimitKind::Quota,
            retry_after_s: 3_601
        })
    );
    let over_both = answer(
        proto::CODE_OVER_LIMIT,
        vec![
            status(proto::CODE_OVER_LIMIT, 100, 0, duration(0, 0)),
            status(
                proto::CODE_OVER_LIMIT,
                50_000,
                0,
                duration(9_999_999_999, 0),
            ),
        ],
    );
    assert_eq!(
        interpret(&both(), RlsAnswer::Message(&over_both), NOW_MS),
        Ok(Counted::Over {
            kind: LimitKind::RateLimit,
            retry_after_s: 1
        }),
        "Retry-After is at least 1"
    );
    let clamped = answer(
        proto::CODE_OVER_LIMIT,
        vec![
            status(proto::CODE_OK, 100, 1, duration(5, 0)),
            status(
                proto::CODE_OVER_LIMIT,
                50_000,
                0,
                duration(9_999_999_999, 0),
            ),
        ],
    );
    assert_eq!(
        interpret(&both(), RlsAnswer::Message(&clamped), NOW_MS),
        Ok(Counted::Over {
            kind: LimitKind::Quota,
            retry_after_s: 2_592_000
        }),
        "and at most the window"
    );
}

#[test]
fn answers_that_cannot_be_used_are_service_failures() {
    let one = asked(&Limits {
        rate: Some(limit(5, 60)),
        quota: None,
    });
    let ok = status(proto::CODE_OK, 5, 1, duration(1, 0));
    let cases: Vec<(Vec<u8>, ServiceFailure)> = vec![
        (vec![0xff, 0xff, 0xff], ServiceFailure::Undecodable),
        (answer(proto::CODE_OK, vec![]), ServiceFailure::Mismatched),
        (
            answer(proto::CODE_OK, vec![ok.clone(), ok.clone()]),
            ServiceFailure::Mismatched,
        ),
        (answer(0, vec![ok.clone()]), ServiceFailure::Mismatched),
        (
            answer(proto::CODE_OVER_LIMIT, vec![ok]),
            ServiceFailure::Mismatched,
        ),
    ];
    for (message, failure) in cases {
        assert_eq!(
            interpret(&one, RlsAnswer::Message(&message), NOW_MS),
            Err(failure)
        );
    }
    assert_eq!(
        interpret(&one, RlsAnswer::Status(14), NOW_MS),
        Err(ServiceFailure::Status(14))
    );
    assert_eq!(
        interpret(&one, RlsAnswer::NotDispatched, NOW_MS),
        Err(ServiceFailure::NotDispatched)
    );
    assert_eq!(
        ServiceFailure::Status(4).to_string(),
        "gRPC status 4 (DEADLINE_EXCEEDED)"
    );
}

#[test]
fn the_asked_limits_go_back_to_limits() {
    let limits = Limits {
        rate: Some(limit(100, 60)),
        quota: Some(limit(50_000, 2_592_000)),
    };
    assert_eq!(as_limits(&asked(&limits)), limits);
    assert_eq!(as_limits(&[]), Limits::default());
}

#[test]
fn the_log_throttle_allows_a_line_a_second() {
    let mut throttle = LogThrottle::default();
    assert!(throttle.allow(10_000));
    assert!(!throttle.allow(10_999));
    assert!(throttle.allow(11_000));
    assert!(!throttle.allow(11_001));
}

#[test]
fn cluster_names_that_envoy_would_read_as_a_grpc_service_are_refused() {
    let config = |cluster: &str| GlobalLimitsConfig {
        cluster: cluster.into(),
        domain: None,
        timeout_ms: None,
        failure_mode: None,
    };
    // Valid protobuf wire data: Envoy parses them as a GrpcService without a target and aborts.
    for name in ["xx", "hh", "pp", "ax_limits", "aaaaaaaaa"] {
        let err = GlobalLimits::compile(config(name)).unwrap_err();
        assert_eq!(err.path(), "global_limits.cluster", "{name}");
        assert!(err.message().contains("serialized GrpcService"), "{name}");
    }
    for name in [
        "tollgate_rls",
        "rls",
        "ratelimit",
        "outbound|8081||tollgate-rls.invoice.svc.cluster.local",
    ] {
        assert!(GlobalLimits::compile(config(name)).is_ok(), "{name}");
    }
    assert!(GlobalLimits::compile(config("with space")).is_err());
}
