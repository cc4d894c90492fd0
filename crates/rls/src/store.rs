//! Redis I/O: one self-healing connection, and every call bounded in time so a caller never hangs.
//!
//! The redis crate's `ConnectionManager` reconnects when a connection drops. What it does not
//! cover is handled here: Redis being down when the service starts (the manager is created
//! lazily, so startup never waits for Redis); and a connection that stays open but no longer
//! answers, was refused at AUTH, or reaches a demoted replica after a failover (the manager is
//! then replaced by a fresh one, see [`Store::reconnect`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind};

use crate::script::{self, Call, Outcome};

/// Bound on opening one connection (TCP, TLS, AUTH, SELECT): generous enough for TLS to a managed
/// Redis in another zone, and short enough that a dead address is retried soon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Health probes wait at least this long: reachability, not a latency target, decides SERVING.
const MIN_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The `--redis` URL is not one the redis crate accepts.
    InvalidUrl(String),
    /// No connection to Redis (refused, dropped, reconnecting, failing over).
    Unavailable(String),
    /// Redis did not answer within the allowed time.
    Timeout,
    /// Redis answered, but with an error or a reply of the wrong shape.
    Script(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            StoreError::Unavailable(why) => write!(f, "Redis unavailable: {why}"),
            StoreError::Timeout => f.write_str("Redis did not answer in time"),
            StoreError::Script(why) => write!(f, "Redis script failed: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    fn from_redis(e: &RedisError) -> StoreError {
        let server_busy = matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
            )
        );
        if e.is_timeout() {
            StoreError::Timeout
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || server_busy
            || e.kind() == ErrorKind::AuthenticationFailed
        {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Script(e.to_string())
        }
    }
}

/// The counter store: the counting script and the connection it runs on.
pub struct Store {
    client: Client,
    manager: RwLock<ConnectionManager>,
    /// A call met READONLY: the connection reaches a replica (after a failover) and must be
    /// renewed. Left to the health loop so a burst of calls renews it once, not once each.
    on_replica: AtomicBool,
    script: Script,
    /// Bound on one counting call (`--redis-timeout-ms`).
    request_timeout: Duration,
    /// Bound on one health probe.
    probe_timeout: Duration,
}

impl Store {
    /// Prepares the store without connecting: the first call (or probe) opens the connection.
    pub fn new(url: &str, request_timeout: Duration) -> Result<Store, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        let probe_timeout = request_timeout.max(MIN_PROBE_TIMEOUT);
        let manager = lazy_manager(&client, probe_timeout)?;
        Ok(Store {
            client,
            manager: RwLock::new(manager),
            on_replica: AtomicBool::new(false),
            script: Script::new(script::SOURCE),
            request_timeout,
            probe_timeout,
        })
    }

    /// Runs the counting script: EVALSHA; on NOSCRIPT (Redis restarted since the last probe) the
    /// redis crate loads the script and runs it again.
    pub async fn count(&self, call: &Call, descriptors: usize) -> Result<Outcome, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection();
        let reply: Vec<i64> = tokio::time::timeout(
            self.request_timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(|e| self.failed(&e))?;
        script::read_reply(&reply, descriptors).map_err(|e| StoreError::Script(e.to_string()))
    }

    /// The health probe: SCRIPT LOAD. It proves Redis answers, and keeps the script cached, so
    /// calls after a Redis restart run EVALSHA at once instead of first learning NOSCRIPT.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        tokio::time::timeout(self.probe_timeout, self.script.load_async(&mut connection))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map(|_| ())
            .map_err(|e| self.failed(&e))
    }

    /// Drops the current connection for a fresh, lazily connecting one: for the failures the
    /// manager does not recover from by itself (silent connections, refused AUTH, READONLY).
    pub fn reconnect(&self) {
        match lazy_manager(&self.client, self.probe_timeout) {
            Ok(fresh) => {
                *self.manager.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            // Only reachable with an invalid configuration, which `new` already refused.
            Err(e) => eprintln!("tollgate-rls: cannot renew the Redis connection: {e}"),
        }
    }

    fn connection(&self) -> ConnectionManager {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a call found the connection on a replica since the last time this was asked.
    pub fn take_on_replica(&self) -> bool {
        self.on_replica.swap(false, Ordering::Relaxed)
    }

    fn failed(&self, e: &RedisError) -> StoreError {
        if e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) {
            self.on_replica.store(true, Ordering::Relaxed);
        }
        StoreError::from_redis(e)
    }
}

fn lazy_manager(
    client: &Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, StoreError> {
    // Few, short retries per reconnection round: the next call or probe starts another round,
    // so counting resumes well within 2 s of Redis coming back.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))
}
