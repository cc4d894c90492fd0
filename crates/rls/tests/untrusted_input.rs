//! Calls no tollgate would make, from whoever can reach the port: messages far larger than any
//! valid request, and floods of descriptors, are refused without the service's memory growing
//! with them, and the service keeps serving; a hits_addend that would spend a consumer's quota
//! in one call is refused before Redis is touched.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use envoy_types::pb::google::protobuf::UInt64Value;
use redis::AsyncCommands;
use tonic::Code;

/// The largest request the service accepts by its own rules: a 256-byte domain, 16 descriptors
/// of 16 entries, each key and value 256 bytes, every optional field set (~134 KB encoded).
fn largest_valid_request() -> envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest {
    let descriptors = (0..16)
        .map(|d| {
            let keys: Vec<String> = (0..16)
                .map(|e| format!("{d:03}{e:03}{}", "k".repeat(250)))
                .collect();
            let value = "v".repeat(256);
            let entries: Vec<(&str, &str)> =
                keys.iter().map(|k| (k.as_str(), value.as_str())).collect();
            let mut descriptor = descriptor(&entries, Some((u32::MAX, DAY)));
            descriptor.hits_addend = Some(UInt64Value { value: 1 });
            descriptor
        })
        .collect();
    let mut r = request(descriptors);
    r.domain = "d".repeat(256);
    r
}

#[tokio::test]
async fn oversized_messages_are_refused_before_they_are_decoded() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let ok = request_ok();
    assert_eq!(
        should(&mut client, ok.clone()).await.unwrap().overall_code,
        OK
    );

    // Every valid request fits, with room to spare.
    let largest = largest_valid_request();
    assert!(prost::Message::encoded_len(&largest) > 130_000);
    let r = should(&mut client, largest).await.unwrap();
    assert_eq!(r.overall_code, OK);
    assert_eq!(r.statuses.len(), 16);
    let before = peak_rss_kib(rls.pid());

    // 4 MB of empty descriptors (2 bytes each): refused by size, never decoded.
    let flood = request(empty_descriptors(2_000_000));
    assert!(prost::Message::encoded_len(&flood) < 4 << 20);
    let status = should(&mut client, flood).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // Just under the size bound: refused for their descriptor count, counted on the wire
    // rather than decoded first (decoded, each would take ~7 MB).
    for _ in 0..4 {
        let status = should(&mut client, request(empty_descriptors(120_000)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("120000 descriptors"),
            "{status:?}"
        );
    }

    let grown_kib = peak_rss_kib(rls.pid()).saturating_sub(before);
    eprintln!("peak resident memory grew by {grown_kib} KiB");
    assert!(
        grown_kib < 4 * 1024,
        "peak resident memory grew by {grown_kib} KiB"
    );

    // Still serving, on the same connection and on a new one.
    assert_eq!(
        should(&mut client, ok.clone()).await.unwrap().overall_code,
        OK
    );
    let mut fresh = rls.client().await;
    assert_eq!(should(&mut fresh, ok).await.unwrap().overall_code, OK);
}

/// A gRPC request body that announces a 200,000-byte message and then sends nothing more.
struct Stalled {
    announced: bool,
}

impl http_body::Body for Stalled {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.announced {
            return std::task::Poll::Pending;
        }
        self.announced = true;
        // Not compressed, then the length, big-endian.
        let mut prefix = vec![0_u8];
        prefix.extend_from_slice(&200_000_u32.to_be_bytes());
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(prefix.into()))))
    }
}

#[tokio::test]
async fn a_request_that_never_finishes_is_cancelled() {
    use tonic::codegen::{http, Service};

    let redis = Redis::start();
    // The call may take --redis-timeout-ms (here 20) and a second more, reading included.
    let rls = Rls::start(&redis.url());
    let mut channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", rls.port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let request = http::Request::post(format!(
        "http://127.0.0.1:{}/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        rls.port
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(tonic::body::Body::new(Stalled { announced: false }))
    .unwrap();

    let start = std::time::Instant::now();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), channel.call(request))
        .await
        .expect("the service never answered a stalled request")
        .unwrap();
    let waited = start.elapsed();
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(status.as_deref(), Some("1"), "CANCELLED: {response:?}");
    assert!(
        waited < std::time::Duration::from_secs(3),
        "took {waited:?}"
    );
    eprintln!("a stalled request was cancelled after {waited:?}");

    let mut client = rls.client().await;
    assert_eq!(
        should(&mut client, request_ok())
            .await
            .unwrap()
            .overall_code,
        OK
    );
}

fn request_ok() -> envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest {
    request(vec![descriptor(&[("consumer", "c")], Some((1_000, DAY)))])
}

#[tokio::test]
async fn a_hits_addend_above_the_maximum_is_refused_before_redis() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let quota = || {
        descriptor(
            &[("consumer", "victim"), ("limit", "quota")],
            Some((50_000, DAY)),
        )
    };

    // One call that would use up the victim's month: refused, whatever the field.
    let mut whole = request(vec![quota()]);
    whole.hits_addend = u32::MAX;
    let mut own = quota();
    own.hits_addend = Some(UInt64Value { value: 50_000 });
    let mut uncounted = descriptor(&[("path", "/")], None);
    uncounted.hits_addend = Some(UInt64Value { value: 2 });
    for bad in [whole, request(vec![own]), request(vec![quota(), uncounted])] {
        let status = should(&mut client, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("--max-hits-addend"), "{status:?}");
    }
    let keys: Vec<String> = redis.connection().await.keys("*").await.unwrap();
    assert!(keys.is_empty(), "a refused request reached Redis: {keys:?}");

    // What tollgate sends (1), and 0, which the protocol reads as 1.
    for addend in [1, 0] {
        let mut r = request(vec![quota()]);
        r.hits_addend = addend;
        assert_eq!(should(&mut client, r).await.unwrap().overall_code, OK);
    }
    let count: u64 = redis
        .connection()
        .await
        .get(key(
            &[("consumer", "victim"), ("limit", "quota")],
            86_400,
            now_s() / 86_400,
        ))
        .await
        .unwrap();
    assert_eq!(count, 2);

    // Raised by the flag, for other Envoy setups that count more than one per request.
    let raised = Rls::start_ready_with(&redis.url(), &["--max-hits-addend", "5"]).await;
    let mut client = raised.client().await;
    let mut five = request(vec![quota()]);
    five.hits_addend = 5;
    assert_eq!(
        should(&mut client, five.clone())
            .await
            .unwrap()
            .overall_code,
        OK
    );
    five.hits_addend = 6;
    let status = should(&mut client, five).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[test]
fn a_bad_max_hits_addend_is_refused_at_start() {
    for bad in ["0", "4294967296", "many"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-rls"))
            .args(["--redis", "redis://127.0.0.1:1/0", "--max-hits-addend", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--max-hits-addend"), "{stderr}");
    }
}
