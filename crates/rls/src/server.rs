//! The `RateLimitService` route as tonic generates it (envoy-types' `RateLimitServiceServer`),
//! with one difference: its codec checks a request's size and counts on the wire before prost
//! decodes it (see `wire`). The generated server offers no way to change its codec.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, SERVICE_NAME,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use prost::bytes::Buf;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use crate::request::{RequestError, MAX_REQUEST_BYTES};
use crate::service::RateLimiter;
use crate::wire;

const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// The gRPC service `envoy.service.ratelimit.v3.RateLimitService`.
#[derive(Clone)]
pub struct RateLimitServer {
    limiter: Arc<RateLimiter>,
}

impl RateLimitServer {
    pub fn new(limiter: RateLimiter) -> RateLimitServer {
        RateLimitServer {
            limiter: Arc::new(limiter),
        }
    }
}

impl NamedService for RateLimitServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for RateLimitServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SHOULD_RATE_LIMIT {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = ShouldRateLimit(Arc::clone(&self.limiter));
        Box::pin(async move {
            // A message declaring more than the bound is refused (OUT_OF_RANGE) from its
            // 5-byte prefix, before its body is read.
            let mut grpc = Grpc::new(RequestCodec)
                .apply_max_message_size_config(Some(MAX_REQUEST_BYTES), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

struct ShouldRateLimit(Arc<RateLimiter>);

impl UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = RateLimitResponse;
    type Future = BoxFuture<tonic::Response<RateLimitResponse>, Status>;

    fn call(&mut self, request: tonic::Request<RateLimitRequest>) -> Self::Future {
        let limiter = Arc::clone(&self.0);
        Box::pin(async move { limiter.should_rate_limit(request).await })
    }
}

/// prost, with the request checked by `wire::check` before it is decoded.
struct RequestCodec;

impl Codec for RequestCodec {
    type Encode = RateLimitResponse;
    type Decode = RateLimitRequest;
    type Encoder = ResponseEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = RateLimitResponse;
    type Error = Status;

    fn encode(&mut self, item: RateLimitResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows as needed, so this cannot run out of room.
        item.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = RateLimitRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<RateLimitRequest>, Status> {
        // The whole message, already bounded by MAX_REQUEST_BYTES; taken without a copy.
        let message = buf.copy_to_bytes(buf.remaining());
        wire::check(&message).map_err(|e| Status::invalid_argument(e.to_string()))?;
        RateLimitRequest::decode(message).map(Some).map_err(|e| {
            Status::invalid_argument(RequestError::Malformed(e.to_string()).to_string())
        })
    }
}
