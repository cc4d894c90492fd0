//! The gRPC glue of `ShouldRateLimit`: plan the request, run the script, build the answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use crate::request::{self, Counted};
use crate::response;
use crate::script::{self, Outcome};
use crate::store::{Store, StoreError};

/// The `RateLimitService` implementation.
pub struct RateLimiter {
    store: Arc<Store>,
    /// `--max-hits-addend`.
    max_addend: u64,
}

impl RateLimiter {
    pub fn new(store: Arc<Store>, max_addend: u64) -> RateLimiter {
        RateLimiter { store, max_addend }
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimiter {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let plan = request::plan(request.get_ref(), now_ms(), self.max_addend)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let counted: Vec<&Counted> = plan.counted().collect();
        let outcome = if counted.is_empty() {
            // Nothing to count: no reason to depend on Redis.
            Outcome {
                admitted: true,
                counts: Vec::new(),
            }
        } else {
            let call = script::call_for(counted.iter().copied());
            self.store
                .count(&call, counted.len())
                .await
                .map_err(status_for)?
        };
        Ok(Response::new(response::build(&plan, &outcome)))
    }
}

/// The service's clock, in Unix milliseconds. Windows come from this clock rather than from
/// Redis' `TIME`, so replicas must keep their clocks in sync (NTP), as Envoy's own service assumes.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn status_for(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(_) | StoreError::Timeout => Status::unavailable(e.to_string()),
        StoreError::InvalidUrl(_) | StoreError::UnusableUrl(_) | StoreError::Script(_) => {
            Status::internal(e.to_string())
        }
    }
}
