//! Test harness: a real `redis-server` and the built `tollgate-rls`, each a child process on a free
//! loopback port, killed when dropped; plus the gRPC and Redis clients the tests talk through.

#![allow(dead_code)] // each test binary uses a different part of the harness
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub const RLS_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";

// Wire values of the RLS units.
pub const SECOND: i32 = 1;
pub const MINUTE: i32 = 2;
pub const HOUR: i32 = 3;
pub const DAY: i32 = 4;

pub const OK: i32 = 1;
pub const OVER_LIMIT: i32 = 2;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A throwaway `redis-server`: no persistence, loopback only.
pub struct Redis {
    pub port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(free_port(), &[])
    }

    /// Starts on `port` with extra arguments (`--requirepass`, TLS settings, ...).
    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        let mut redis = Redis {
            port,
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Starts the server again on the same port (after [`Redis::kill`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let tls = self.extra.iter().any(|a| a == "--tls-port");
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if tls {
            command.args(["--port", "0"]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(5)),
            "redis-server did not open port {}",
            self.port
        );
    }

    /// SIGKILL: Redis vanishes as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections open but answers nothing, like a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Redis::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("not running").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A plain connection for inspecting what the service wrote (no password, no TLS).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.connection_to(&self.url()).await
    }

    pub async fn connection_to(&self, url: &str) -> redis::aio::MultiplexedConnection {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `tollgate-rls`.
pub struct Rls {
    pub port: u16,
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// How to hand the Redis URL to the service.
pub enum RedisUrl<'a> {
    Flag(&'a str),
    Env(&'a str),
}

impl Rls {
    pub fn start(redis_url: &str) -> Rls {
        Rls::start_with(RedisUrl::Flag(redis_url), &[], &[])
    }

    pub fn start_with(url: RedisUrl<'_>, args: &[&str], env: &[(&str, &str)]) -> Rls {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate-rls"));
        command
            .args(["--listen", &listen])
            .args(args)
            .env_remove("TOLLGATE_RLS_REDIS")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match url {
            RedisUrl::Flag(url) => {
                command.args(["--redis", url]);
            }
            RedisUrl::Env(url) => {
                command.env("TOLLGATE_RLS_REDIS", url);
            }
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let rls = Rls {
            port,
            child,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !rls.logged("listening on") {
            assert!(
                Instant::now() < deadline,
                "tollgate-rls did not start: {:?}",
                rls.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        rls
    }

    /// Starts the service and waits until it reports SERVING, as a readiness probe would. The
    /// Redis timeout is generous: these runs test counting, not latency, on a busy debug build.
    pub async fn start_ready(redis_url: &str) -> Rls {
        Rls::start_ready_with(redis_url, &[]).await
    }

    /// [`Rls::start_ready`] with more flags.
    pub async fn start_ready_with(redis_url: &str, args: &[&str]) -> Rls {
        let args = [&["--redis-timeout-ms", "2000"], args].concat();
        let rls = Rls::start_with(RedisUrl::Flag(redis_url), &args, &[]);
        let mut health = rls.health().await;
        wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(5)).await;
        rls
    }

    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn logged(&self, text: &str) -> bool {
        self.log().iter().any(|line| line.contains(text))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn client(&self) -> RateLimitServiceClient<Channel> {
        RateLimitServiceClient::new(self.channel().await)
    }

    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for Rls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A descriptor with entries and, optionally, a `limit` override (requests_per_unit, unit).
pub fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, i32)>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: (*key).to_string(),
                value: (*value).to_string(),
            })
            .collect(),
        limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
            requests_per_unit,
            unit,
        }),
        hits_addend: None,
        is_negative_hits: false,
    }
}

pub fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: "tollgate".to_string(),
        descriptors,
        hits_addend: 1,
    }
}

/// The key the service uses for plain (unescaped) entries; mirrors the documented layout.
pub fn key(entries: &[(&str, &str)], unit_s: u64, window: u64) -> String {
    let joined: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "tollgate-rls:tollgate:{}:{unit_s}:{window}",
        joined.join("|")
    )
}

pub async fn should(
    client: &mut RateLimitServiceClient<Channel>,
    request: RateLimitRequest,
) -> Result<RateLimitResponse, tonic::Status> {
    client
        .should_rate_limit(request)
        .await
        .map(tonic::Response::into_inner)
}

pub async fn health_status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let reply = health
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(reply.status).unwrap()
}

/// Polls both health names until they report `wanted`; returns how long it took.
pub async fn wait_health(
    health: &mut HealthClient<Channel>,
    wanted: ServingStatus,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let overall = health_status(health, "").await;
        let rls = health_status(health, RLS_SERVICE).await;
        if overall == wanted && rls == wanted {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "health is {overall:?}/{rls:?}, not {wanted:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `request` until it is answered OK; returns how long it took.
pub async fn wait_counting(
    client: &mut RateLimitServiceClient<Channel>,
    request: &RateLimitRequest,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = should(client, request.clone()).await;
        if let Ok(response) = &answer {
            assert_eq!(response.overall_code, OK);
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "not counting after {within:?}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Test certificates made with the `openssl` command: a CA, and a server certificate for
/// 127.0.0.1 that it signed.
pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    pub fn create() -> TestCa {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-rls-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &["req", "-x509"],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=tollgate-rls test CA",
            ],
        );
        openssl(
            &dir,
            &["req"],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
            ],
            &["-CAcreateserial"],
            &["-out", "server.crt", "-days", "2", "-extfile", "server.ext"],
        );
        TestCa { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(a)
        .args(b)
        .args(c)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command is needed to make test certificates");
    assert!(status.success(), "openssl {a:?} failed");
}

/// Peak resident memory of a process in KiB (`VmHWM` in /proc), Linux only.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A descriptor with nothing in it: two bytes on the wire, what a flood is made of.
pub fn empty_descriptors(count: usize) -> Vec<RateLimitDescriptor> {
    vec![RateLimitDescriptor::default(); count]
}
