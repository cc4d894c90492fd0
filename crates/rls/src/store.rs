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
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, Script, ServerErrorKind,
};

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
    /// The redis crate accepts the URL, but no connection made from it could ever work.
    UnusableUrl(UnusableUrl),
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
            StoreError::UnusableUrl(why) => write!(f, "unusable Redis URL: {why}"),
            StoreError::Unavailable(why) => write!(f, "Redis unavailable: {why}"),
            StoreError::Timeout => f.write_str("Redis did not answer in time"),
            StoreError::Script(why) => write!(f, "Redis script failed: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A Redis URL the redis crate parses but cannot serve: left to the first call, every call
/// would fail while the service looked healthy enough to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnusableUrl {
    /// `rediss://...#insecure`: this build has no way to skip certificate checks (the crate's
    /// `tls-rustls-insecure` feature is off, on purpose), so every handshake would fail.
    InsecureTls,
    /// A Unix socket (`unix://`, `redis+unix://`): not a deployment this service supports.
    UnixSocket,
    /// `SELECT` of a negative database fails on every connection.
    NegativeDatabase(i64),
    /// A user name without a password: the crate sends no AUTH at all then.
    UserWithoutPassword,
    /// `rediss://` with certificate roots the crate fails to load (it refuses every
    /// connection then), or with none (nothing could be verified).
    NoTrustedRoots(String),
    /// An address kind this build does not know.
    Unsupported,
}

impl fmt::Display for UnusableUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnusableUrl::InsecureTls => f.write_str(
                "#insecure (TLS without certificate checks) is not supported: make the server's CA trusted instead (SSL_CERT_FILE)",
            ),
            UnusableUrl::UnixSocket => {
                f.write_str("Unix sockets are not supported: use redis:// or rediss://")
            }
            UnusableUrl::NegativeDatabase(db) => {
                write!(f, "database {db} does not exist (0 or more)")
            }
            UnusableUrl::UserWithoutPassword => {
                f.write_str("a user name needs a password (redis://user:password@host)")
            }
            UnusableUrl::NoTrustedRoots(why) => write!(
                f,
                "rediss:// needs trusted CA certificates (the system's, SSL_CERT_FILE or SSL_CERT_DIR): {why}"
            ),
            UnusableUrl::Unsupported => f.write_str("this kind of address is not supported"),
        }
    }
}

/// Refuses what the redis crate would accept here and then fail on every connection.
fn check_usable(info: &ConnectionInfo) -> Result<(), UnusableUrl> {
    match info.addr() {
        ConnectionAddr::Tcp(..) => {}
        ConnectionAddr::TcpTls { insecure: true, .. } => return Err(UnusableUrl::InsecureTls),
        ConnectionAddr::TcpTls { .. } => check_roots()?,
        ConnectionAddr::Unix(_) => return Err(UnusableUrl::UnixSocket),
        _ => return Err(UnusableUrl::Unsupported),
    }
    let settings = info.redis_settings();
    if settings.db() < 0 {
        return Err(UnusableUrl::NegativeDatabase(settings.db()));
    }
    if settings.username().is_some() && settings.password().is_none() {
        return Err(UnusableUrl::UserWithoutPassword);
    }
    Ok(())
}

/// Loads the certificate roots as the redis crate does for each TLS connection, which fails
/// the connection on any loading error.
fn check_roots() -> Result<(), UnusableUrl> {
    let roots = rustls_native_certs::load_native_certs();
    if let Some(error) = roots.errors.first() {
        return Err(UnusableUrl::NoTrustedRoots(error.to_string()));
    }
    if roots.certs.is_empty() {
        return Err(UnusableUrl::NoTrustedRoots("none found".to_string()));
    }
    Ok(())
}

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
    /// A URL no connection could ever be made from is refused here, at start.
    pub fn new(url: &str, request_timeout: Duration) -> Result<Store, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        check_usable(client.get_connection_info()).map_err(StoreError::UnusableUrl)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(url: &str) -> Result<(), UnusableUrl> {
        check_usable(Client::open(url).unwrap().get_connection_info())
    }

    #[test]
    fn urls_a_connection_can_be_made_from_pass() {
        for url in [
            "redis://h:6379/0",
            "redis://h",
            "redis://:pw@h:6379/15",
            "redis://user:pw@h:6379/1",
            "redis://h:6379/0?protocol=resp3",
        ] {
            assert_eq!(usable(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn urls_no_connection_could_be_made_from_are_refused() {
        assert_eq!(
            usable("rediss://h:6380/0#insecure"),
            Err(UnusableUrl::InsecureTls)
        );
        assert_eq!(
            usable("unix:///run/redis.sock"),
            Err(UnusableUrl::UnixSocket)
        );
        assert_eq!(
            usable("redis+unix:///run/redis.sock?db=1"),
            Err(UnusableUrl::UnixSocket)
        );
        assert_eq!(
            usable("redis://h:6379/-1"),
            Err(UnusableUrl::NegativeDatabase(-1))
        );
        assert_eq!(
            usable("redis://alice@h:6379/0"),
            Err(UnusableUrl::UserWithoutPassword)
        );
    }

    #[test]
    fn the_crate_refuses_the_rest_itself() {
        for url in [
            "rediss://h:6380/0#other",
            "redis://0.0.0.0:6379",
            "redis://h:6379/db",
            "redis://h:6379/0?protocol=4",
            "redis:///0",
            "http://h:6379",
        ] {
            assert!(
                matches!(
                    Store::new(url, Duration::from_millis(20)),
                    Err(StoreError::InvalidUrl(_))
                ),
                "{url}"
            );
        }
    }
}
