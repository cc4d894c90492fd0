//! The service around Redis failures and connection settings: health, UNAVAILABLE without hanging,
//! reconnecting, passwords, TLS, and shutdown.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn counted_request(
    consumer: &str,
) -> envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest {
    request(vec![descriptor(
        &[("consumer", consumer)],
        Some((1_000, DAY)),
    )])
}

/// Asserts that a call is answered UNAVAILABLE, and quickly.
async fn assert_unavailable_fast(
    client: &mut envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient<tonic::transport::Channel>,
) {
    for _ in 0..5 {
        let start = Instant::now();
        let status = should(client, counted_request("down")).await.unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }
}

#[tokio::test]
async fn health_follows_redis_and_counting_resumes_after_a_restart() {
    let mut redis = Redis::start();
    let rls = Rls::start(&redis.url());
    let mut client = rls.client().await;
    let mut health = rls.health().await;

    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    let r = should(&mut client, counted_request("a")).await.unwrap();
    assert_eq!(r.overall_code, OK);

    redis.kill();
    wait_health(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_millis(2_500),
    )
    .await;
    assert_unavailable_fast(&mut client).await;
    assert!(rls.logged("redis unreachable"), "{:?}", rls.log());

    redis.restart();
    let took = wait_counting(&mut client, &counted_request("b"), Duration::from_secs(3)).await;
    eprintln!("counting resumed {took:?} after redis-server was back");
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(2)).await;
    assert!(rls.logged("redis reachable again"), "{:?}", rls.log());
}

#[tokio::test]
async fn a_hung_redis_is_answered_unavailable_without_waiting() {
    let redis = Redis::start();
    let rls = Rls::start(&redis.url());
    let mut client = rls.client().await;
    let mut health = rls.health().await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    assert_eq!(
        should(&mut client, counted_request("a"))
            .await
            .unwrap()
            .overall_code,
        OK
    );

    redis.pause();
    assert_unavailable_fast(&mut client).await;
    // The probe waits up to 1 s for an answer, then reports NOT_SERVING.
    wait_health(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_secs(3),
    )
    .await;

    redis.resume();
    wait_counting(&mut client, &counted_request("b"), Duration::from_secs(3)).await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_replica_is_unavailable_until_promoted() {
    // A replica of a master that does not exist: reads work, writes answer READONLY, as a
    // demoted primary does during a failover.
    let dead_master = free_port().to_string();
    let redis = Redis::start_with(free_port(), &["--replicaof", "127.0.0.1", &dead_master]);
    let rls = Rls::start(&redis.url());
    let mut client = rls.client().await;
    let mut health = rls.health().await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    assert_unavailable_fast(&mut client).await;

    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    wait_counting(
        &mut client,
        &counted_request("promoted"),
        Duration::from_secs(3),
    )
    .await;
}

#[tokio::test]
async fn starts_without_redis_and_connects_when_it_appears() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let rls = Rls::start(&url);
    let mut client = rls.client().await;
    let mut health = rls.health().await;

    assert_eq!(
        health_status(&mut health, "").await,
        ServingStatus::NotServing
    );
    assert_eq!(
        health_status(&mut health, RLS_SERVICE).await,
        ServingStatus::NotServing
    );
    assert_unavailable_fast(&mut client).await;

    let _redis = Redis::start_with(port, &[]);
    wait_counting(
        &mut client,
        &counted_request("late"),
        Duration::from_secs(3),
    )
    .await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn requests_without_limits_do_not_need_redis() {
    let rls = Rls::start(&format!("redis://127.0.0.1:{}/0", free_port()));
    let mut client = rls.client().await;
    let r = should(
        &mut client,
        request(vec![descriptor(&[("path", "/")], None)]),
    )
    .await
    .unwrap();
    assert_eq!(r.overall_code, OK);
}

#[tokio::test]
async fn the_url_comes_from_the_environment_and_passwords_stay_out_of_the_log() {
    let redis = Redis::start_with(free_port(), &["--requirepass", "s3cret-pw"]);
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/0", redis.port);
    let rls = Rls::start_with(RedisUrl::Env(&url), &[], &[]);
    let mut client = rls.client().await;
    let mut health = rls.health().await;

    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    let r = should(&mut client, counted_request("env")).await.unwrap();
    assert_eq!(r.overall_code, OK);
    let count: u64 = redis::AsyncCommands::get(
        &mut redis.connection_to(&url).await,
        key(&[("consumer", "env")], 86_400, now_s() / 86_400),
    )
    .await
    .unwrap();
    assert_eq!(count, 1);

    let log = rls.log();
    let listening: Vec<&String> = log.iter().filter(|l| l.contains("listening on")).collect();
    assert_eq!(listening.len(), 1, "{log:?}");
    assert!(listening[0].contains(&format!("redis://***@127.0.0.1:{}/0", redis.port)));
    assert!(
        log.iter().all(|line| !line.contains("s3cret-pw")),
        "{log:?}"
    );
}

#[tokio::test]
async fn an_acl_user_and_a_wrong_password() {
    let redis = Redis::start_with(
        free_port(),
        &[
            "--requirepass",
            "other",
            "--user",
            "alice",
            "on",
            ">al1ce",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let good = Rls::start(&format!("redis://alice:al1ce@127.0.0.1:{}/0", redis.port));
    let mut client = good.client().await;
    let mut health = good.health().await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    assert_eq!(
        should(&mut client, counted_request("acl"))
            .await
            .unwrap()
            .overall_code,
        OK
    );

    let wrong = Rls::start(&format!("redis://alice:wrong@127.0.0.1:{}/0", redis.port));
    let mut client = wrong.client().await;
    let mut health = wrong.health().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        health_status(&mut health, "").await,
        ServingStatus::NotServing
    );
    assert_unavailable_fast(&mut client).await;
    assert!(wrong.log().iter().all(|line| !line.contains("wrong@")));
}

#[tokio::test]
async fn rediss_verifies_the_server_certificate() {
    let ca = TestCa::create();
    let port = free_port();
    let redis = Redis::start_with(
        port,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &ca.path("server.crt"),
            "--tls-key-file",
            &ca.path("server.key"),
            "--tls-ca-cert-file",
            &ca.path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);

    // Trusting the test CA (rustls-native-certs reads SSL_CERT_FILE): TLS works.
    let trusted = Rls::start_with(
        RedisUrl::Flag(&url),
        &[],
        &[("SSL_CERT_FILE", &ca.path("ca.crt"))],
    );
    let mut client = trusted.client().await;
    let mut health = trusted.health().await;
    wait_health(&mut health, ServingStatus::Serving, Duration::from_secs(3)).await;
    assert_eq!(
        should(&mut client, counted_request("tls"))
            .await
            .unwrap()
            .overall_code,
        OK
    );

    // With the system's roots only: the certificate is refused, so Redis counts as unreachable.
    let untrusted = Rls::start(&url);
    let mut client = untrusted.client().await;
    let mut health = untrusted.health().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        health_status(&mut health, RLS_SERVICE).await,
        ServingStatus::NotServing
    );
    assert_eq!(
        should(&mut client, counted_request("tls"))
            .await
            .unwrap_err()
            .code(),
        Code::Unavailable
    );
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let redis = Redis::start();
    let mut rls = Rls::start(&redis.url());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &rls.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = rls
        .wait_exit(Duration::from_secs(5))
        .expect("still running after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    // The log is read by another thread: give it a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !rls.logged("shutting down") {
        assert!(Instant::now() < deadline, "{:?}", rls.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_flags_print_usage_and_fail() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-rls"))
        .args(["--listen", "nowhere"])
        .env_remove("TOLLGATE_RLS_REDIS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("usage: tollgate-rls"), "{stderr}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-rls"))
        .args(["--redis", "http://u:hidden@h:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hidden"));
}

/// Runs the service until it exits by itself; fails if it is still running after 10 s.
fn run_until_exit(url: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-rls"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("TOLLGATE_RLS_REDIS", url)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{url}: still running, so it was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn urls_no_connection_could_be_made_from_are_refused_at_start() {
    let empty = std::env::temp_dir().join(format!("tollgate-rls-no-roots-{}.pem", free_port()));
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_string_lossy().into_owned();
    let tls = "rediss://:hunter2@127.0.0.1:6380/0";
    // (URL, environment, what the error says)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        // Accepted by the redis crate, then failing every call.
        (
            format!("{tls}#insecure"),
            vec![],
            "#insecure (TLS without certificate checks) is not supported",
        ),
        (
            tls.to_string(),
            vec![("SSL_CERT_FILE", "/nonexistent/ca.pem")],
            "needs trusted CA certificates",
        ),
        (
            tls.to_string(),
            vec![("SSL_CERT_FILE", &empty)],
            "needs trusted CA certificates",
        ),
        (
            "redis://:hunter2@127.0.0.1:6379/-1".to_string(),
            vec![],
            "database -1 does not exist",
        ),
        (
            "redis://hunter2@127.0.0.1:6379/0".to_string(),
            vec![],
            "a user name needs a password",
        ),
        // Refused before, by the scheme check or by the crate.
        (
            "unix:///run/redis.sock".to_string(),
            vec![],
            "must start with redis:// or rediss://",
        ),
        (
            "redis+unix:///run/redis.sock".to_string(),
            vec![],
            "must start with redis:// or rediss://",
        ),
        (
            "valkey://127.0.0.1:6379".to_string(),
            vec![],
            "must start with redis:// or rediss://",
        ),
        (
            format!("{tls}#verify-none"),
            vec![],
            "only #insecure is supported",
        ),
        (
            "redis://0.0.0.0:6379/0".to_string(),
            vec![],
            "wildcard address",
        ),
        (
            "redis://127.0.0.1:6379/zero".to_string(),
            vec![],
            "Invalid database number",
        ),
    ];
    for (url, env, message) in cases {
        let (status, stderr) = run_until_exit(&url, &env);
        assert_eq!(status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(message), "{url}: {stderr}");
        assert!(!stderr.contains("listening on"), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
    let _ = std::fs::remove_file(&empty);
}
