//! Keeps the gRPC health statuses in step with Redis, so Kubernetes probes see what callers see.

use std::sync::Arc;
use std::time::Duration;

use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::server::RateLimitServer;
use crate::store::Store;

/// How often Redis is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Failed probes in a row before the connection is replaced by a fresh one. The redis crate
/// reconnects by itself only after I/O errors; a connection that stays open but never answers,
/// or one whose AUTH was refused, would otherwise stay broken. (A connection that reached a
/// replica is replaced on the next round, see `Store::take_on_replica`.)
const FAILED_PROBES_BEFORE_RECONNECT: u32 = 2;

/// The services whose status follows Redis: the whole server ("") and the RLS service.
const SERVICES: [&str; 2] = ["", <RateLimitServer as NamedService>::NAME];

/// Sets every tracked service to SERVING or NOT_SERVING.
pub async fn set(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Probes Redis forever; logs one line when it becomes unreachable and one when it is back.
pub async fn watch(store: Arc<Store>, reporter: HealthReporter) {
    let mut reachable: Option<bool> = None;
    let mut failed_probes = 0_u32;
    loop {
        let result = store.probe().await;
        let now_reachable = result.is_ok();
        if reachable != Some(now_reachable) {
            set(&reporter, now_reachable).await;
            match &result {
                Err(e) => eprintln!("tollgate-rls: redis unreachable, answering UNAVAILABLE: {e}"),
                // The first successful probe is the normal start, not worth a line.
                Ok(()) if reachable.is_some() => eprintln!("tollgate-rls: redis reachable again"),
                Ok(()) => {}
            }
            reachable = Some(now_reachable);
        }
        failed_probes = if now_reachable { 0 } else { failed_probes + 1 };
        let on_replica = store.take_on_replica();
        if failed_probes >= FAILED_PROBES_BEFORE_RECONNECT || on_replica {
            store.reconnect();
            failed_probes = 0;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rls_service_is_named_as_envoy_names_it() {
        assert_eq!(SERVICES[1], "envoy.service.ratelimit.v3.RateLimitService");
    }
}
