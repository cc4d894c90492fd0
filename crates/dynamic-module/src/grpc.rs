//! A unary gRPC call (the rate-limit service's `ShouldRateLimit`) over the ABI's streamed HTTP
//! callout: the ABI has no gRPC client. The request is the message in gRPC's framing (a flag
//! byte, 0 for uncompressed, and the length as 4 big-endian bytes) after gRPC's headers, sent
//! through the cluster (HTTP/2, as the wasm filter's gRPC calls need too); the answer's
//! status is `grpc-status` from the trailers, or from the headers of a trailers-only answer, or
//! the HTTP status mapped as gRPC's spec maps it when there is neither (an Envoy local reply,
//! say); a reset (the callout's timeout included) is `UNAVAILABLE`.

/// gRPC status codes used here.
const OK: u32 = 0;
const UNKNOWN: u32 = 2;
const INTERNAL: u32 = 13;
const UNIMPLEMENTED: u32 = 12;
const PERMISSION_DENIED: u32 = 7;
const UNAUTHENTICATED: u32 = 16;
pub const UNAVAILABLE: u32 = 14;

/// The request headers of a call to `service`/`method` through `cluster`.
pub fn request_headers(
    cluster: &str,
    service: &str,
    method: &str,
    timeout_ms: u64,
) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (":method", b"POST".to_vec()),
        (":path", format!("/{service}/{method}").into_bytes()),
        (":authority", cluster.as_bytes().to_vec()),
        ("content-type", b"application/grpc".to_vec()),
        ("te", b"trailers".to_vec()),
        ("grpc-timeout", format!("{timeout_ms}m").into_bytes()),
    ]
}

/// `message` in gRPC's length-prefixed framing, uncompressed.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The message of a framed body (the first, the only one of a unary answer); `None` when the
/// frame is cut short or compressed (never asked for).
fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (flag, rest) = body.split_first()?;
    if *flag != 0 {
        return None;
    }
    let length = usize::try_from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
    rest.get(4..4 + length)
}

/// What came back for one call, as it arrives.
#[derive(Debug, Default)]
pub struct Answer {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn value<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

fn number(value: Option<&[u8]>) -> Option<u32> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

impl Answer {
    pub fn headers(&mut self, headers: Vec<(Vec<u8>, Vec<u8>)>) {
        self.headers = headers;
    }

    pub fn data(&mut self, chunk: &[u8]) {
        // A unary answer is small; anything past 1 MiB is not a rate-limit answer.
        if self.body.len() < 1 << 20 {
            self.body.extend_from_slice(chunk);
        }
    }

    pub fn trailers(&mut self, trailers: Vec<(Vec<u8>, Vec<u8>)>) {
        self.trailers = trailers;
    }

    /// The call's gRPC status and, when it is OK, its message.
    pub fn finish(self) -> (u32, Vec<u8>) {
        let status = number(value(&self.trailers, b"grpc-status"))
            .or_else(|| number(value(&self.headers, b"grpc-status")));
        let status = match status {
            Some(status) => status,
            None => match number(value(&self.headers, b":status")) {
                // An HTTP answer without a gRPC status (gRPC's HTTP-to-status mapping).
                Some(400) => INTERNAL,
                Some(401) => UNAUTHENTICATED,
                Some(403) => PERMISSION_DENIED,
                Some(404) => UNIMPLEMENTED,
                Some(429 | 502 | 503 | 504) => UNAVAILABLE,
                _ => UNKNOWN,
            },
        };
        if status != OK {
            return (status, Vec::new());
        }
        match unframe(&self.body) {
            Some(message) => (OK, message.to_vec()),
            None => (INTERNAL, Vec::new()),
        }
    }
}
