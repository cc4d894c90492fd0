//! The `RateLimitResponse` for a plan and the script's outcome: one status per descriptor, in order.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use envoy_types::pb::google::protobuf::Duration;

use crate::request::{Counted, Plan};
use crate::script::{Count, Outcome};

/// Builds the answer. `outcome` holds one count per counted descriptor of `plan`, in order.
pub fn build(plan: &Plan, outcome: &Outcome) -> RateLimitResponse {
    let mut counts = outcome.counts.iter();
    let statuses = plan
        .descriptors
        .iter()
        .map(|descriptor| match descriptor {
            None => uncounted(),
            // A missing count cannot come out of `script::read_reply`; refusing is the safe
            // answer if it ever did.
            Some(counted) => counted_status(
                counted,
                counts.next().copied().unwrap_or(Count {
                    count: u64::MAX,
                    over: true,
                }),
            ),
        })
        .collect();
    let complete = outcome.counts.len() == plan.counted().count();
    let overall = if outcome.admitted && complete {
        Code::Ok
    } else {
        Code::OverLimit
    };
    RateLimitResponse {
        overall_code: overall.into(),
        statuses,
        ..RateLimitResponse::default()
    }
}

/// A descriptor without a `limit` override: allowed, and nothing to report.
fn uncounted() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok.into(),
        ..DescriptorStatus::default()
    }
}

fn counted_status(counted: &Counted, count: Count) -> DescriptorStatus {
    let (code, remaining) = if count.over {
        (Code::OverLimit, 0)
    } else {
        let left = u64::from(counted.limit).saturating_sub(count.count);
        (Code::Ok, u32::try_from(left).unwrap_or(u32::MAX))
    };
    DescriptorStatus {
        code: code.into(),
        current_limit: Some(RateLimit {
            name: String::new(),
            requests_per_unit: counted.limit,
            unit: counted.unit.to_wire(),
        }),
        limit_remaining: remaining,
        duration_until_reset: Some(Duration {
            seconds: i64::try_from(counted.window.reset_after_s).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ..DescriptorStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::{Unit, Window};

    fn counted(limit: u32) -> Counted {
        Counted {
            key: "k".to_string(),
            limit,
            unit: Unit::Minute,
            addend: 1,
            window: Window::at(59_500, Unit::Minute),
        }
    }

    #[test]
    fn admitted_request_reports_what_is_left() {
        let plan = Plan {
            descriptors: vec![Some(counted(5)), None, Some(counted(3))],
        };
        let outcome = Outcome {
            admitted: true,
            counts: vec![
                Count {
                    count: 2,
                    over: false,
                },
                Count {
                    count: 3,
                    over: false,
                },
            ],
        };
        let r = build(&plan, &outcome);
        assert_eq!(r.overall_code, i32::from(Code::Ok));
        assert_eq!(r.statuses.len(), 3);
        assert_eq!(r.statuses[0].limit_remaining, 3);
        assert_eq!(
            r.statuses[0]
                .current_limit
                .as_ref()
                .unwrap()
                .requests_per_unit,
            5
        );
        assert_eq!(r.statuses[0].current_limit.as_ref().unwrap().unit, 2);
        assert_eq!(r.statuses[0].duration_until_reset.unwrap().seconds, 1);
        assert_eq!(r.statuses[1], uncounted());
        assert!(r.statuses[1].current_limit.is_none());
        assert_eq!(r.statuses[2].limit_remaining, 0);
        assert_eq!(r.statuses[2].code, i32::from(Code::Ok));
    }

    #[test]
    fn refused_request_marks_the_descriptors_over_their_limit() {
        let plan = Plan {
            descriptors: vec![Some(counted(5)), Some(counted(3))],
        };
        let outcome = Outcome {
            admitted: false,
            counts: vec![
                Count {
                    count: 3,
                    over: false,
                },
                Count {
                    count: 3,
                    over: true,
                },
            ],
        };
        let r = build(&plan, &outcome);
        assert_eq!(r.overall_code, i32::from(Code::OverLimit));
        assert_eq!(r.statuses[0].code, i32::from(Code::Ok));
        assert_eq!(
            r.statuses[0].limit_remaining, 2,
            "as it stands, not incremented"
        );
        assert_eq!(r.statuses[1].code, i32::from(Code::OverLimit));
        assert_eq!(r.statuses[1].limit_remaining, 0);
    }

    #[test]
    fn a_count_past_the_limit_leaves_nothing() {
        let plan = Plan {
            descriptors: vec![Some(counted(5))],
        };
        let outcome = Outcome {
            admitted: true,
            counts: vec![Count {
                count: 9,
                over: false,
            }],
        };
        assert_eq!(build(&plan, &outcome).statuses[0].limit_remaining, 0);
    }

    #[test]
    fn a_missing_count_is_refused() {
        let plan = Plan {
            descriptors: vec![Some(counted(5))],
        };
        let outcome = Outcome {
            admitted: true,
            counts: vec![],
        };
        let r = build(&plan, &outcome);
        assert_eq!(r.statuses[0].code, i32::from(Code::OverLimit));
        assert_eq!(r.overall_code, i32::from(Code::OverLimit));
    }
}
