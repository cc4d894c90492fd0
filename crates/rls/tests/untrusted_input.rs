//! Calls no tollgate would make, from whoever can reach the port: messages far larger than any
//! valid request, and floods of descriptors, are refused without the service's memory growing
//! with them, and the service keeps serving.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use tonic::Code;

/// The largest request the service accepts by its own rules: a 256-byte domain, 16 descriptors
/// of 16 entries, each key and value 256 bytes, every optional field set (~134 KB encoded).
fn largest_valid_request() -> envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest {
    use envoy_types::pb::google::protobuf::UInt64Value;
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
