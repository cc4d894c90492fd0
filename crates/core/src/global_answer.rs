//! What the rate-limit service's answer, or its failure, makes of a request that waited for
//! it: forwarded with the tightest limit's headers, refused with APIM's 429 or 403, or (when
//! the service fails) whatever `failure_mode` says.

use crate::config::FailureMode;
use crate::deny::Denial;
use crate::dynamic_consumers::Pool;
use crate::global_limits::{as_limits, interpret, Counted, LimitKind, RlsAnswer, ServiceFailure};
use crate::limits::CounterStore;
use crate::local_count::{self, Counter};
use crate::plan::Plan;
use crate::verdict::{forward_with_headers, CounterOwner, GlobalCheck, Verdict};

/// The request's fate, and the service's failure if there was one (for the failure counter
/// and the log).
#[derive(Debug, PartialEq)]
pub struct Settled {
    pub verdict: Verdict,
    pub failure: Option<ServiceFailure>,
}

/// Settles `check` with the service's `answer` at `now_ms`; `counters` stand in for the
/// service when it failed and `failure_mode` is `local`.
pub fn settle(
    plan: &Plan,
    check: GlobalCheck,
    answer: RlsAnswer,
    counters: &dyn CounterStore,
    now_ms: u64,
) -> Settled {
    let GlobalCheck {
        forward,
        local_headers,
        local_counted,
        asked,
        owner,
        ..
    } = check;
    // A refusal gives the local limits' count back: counted only when admitted by all.
    let refuse = |denial: Denial| {
        if let Some((limits, written)) = &local_counted {
            if let Some(counter) = counter_of(plan, &owner, Pool::Local) {
                local_count::give_back(counters, counter, limits, written);
            }
        }
        Verdict::Deny(denial)
    };
    let failure = match interpret(&asked, answer, now_ms) {
        Ok(Counted::Admitted(global)) => {
            return Settled {
                verdict: forward_with_headers(plan, forward, [local_headers, global]),
                failure: None,
            }
        }
        Ok(Counted::Over {
            kind,
            retry_after_s,
        }) => {
            let denial = match kind {
                LimitKind::RateLimit => Denial::rate_limited(retry_after_s),
                LimitKind::Quota => Denial::quota_exceeded(retry_after_s),
            };
            return Settled {
                verdict: refuse(denial),
                failure: None,
            };
        }
        Err(failure) => failure,
    };
    let mode = plan
        .global_limits()
        .map(|global| global.failure_mode)
        .unwrap_or_default();
    let verdict = match mode {
        FailureMode::Local => {
            let counter = counter_of(plan, &owner, Pool::GlobalFallback);
            let counted = match counter {
                Some(counter) => local_count::count(counters, counter, &as_limits(&asked), now_ms)
                    .map(|(headers, _)| headers),
                // A consumer the plan does not hold: refuse rather than count nowhere.
                None => Err(Denial::rate_limited(1)),
            };
            match counted {
                Ok(headers) => forward_with_headers(plan, forward, [local_headers, headers]),
                Err(denial) => refuse(denial),
            }
        }
        FailureMode::Deny => refuse(Denial::limit_service_unavailable()),
        FailureMode::Allow => forward_with_headers(plan, forward, [local_headers, None]),
    };
    Settled {
        verdict,
        failure: Some(failure),
    }
}

/// The consumer's counters in `pool`: its local limits' (`Local`) or those that stand in for
/// the service (`GlobalFallback`).
fn counter_of<'p>(plan: &'p Plan, consumer: &'p CounterOwner, pool: Pool) -> Option<Counter<'p>> {
    match consumer {
        CounterOwner::Configured(id) => plan.consumers.get(*id).map(|configured| {
            Counter::Entry(match pool {
                Pool::Local => &configured.counter_key,
                Pool::GlobalFallback => &configured.fallback_key,
            })
        }),
        CounterOwner::Dynamic(owner) => Some(Counter::Slot {
            pool,
            size: plan.dynamic.map_or(1, |dynamic| dynamic.pool_size),
            owner,
        }),
    }
}

#[cfg(test)]
mod tests;
