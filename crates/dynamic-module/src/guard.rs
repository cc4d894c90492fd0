//! Panics stop at the hook. A panic that unwound out of an `extern "C"` hook would abort Envoy
//! (every worker shares this module's memory, so Envoy cannot contain it): every hook body runs
//! under `catch_unwind` here. A panic in a stream's hook logs an error and answers the request
//! with a 503 in APIM's JSON shape when it still can; the other streams and Envoy carry on.
//!
//! This needs the module built with `panic = "unwind"` (the Makefile's `native` profile; the
//! workspace's release profile aborts, for the wasm filter). Built with `panic = "abort"`,
//! `catch_unwind` catches nothing and the first panic takes Envoy down.

use crate::abi::{self, LogLevel, Stream};
use crate::filter::{Filter, StreamState};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The answer to a request whose hook panicked (APIM's shape, as tollgate's own answers).
pub const PANIC_BODY: &[u8] = br#"{"statusCode":503,"message":"Service unavailable."}"#;
/// `%RESPONSE_CODE_DETAILS%` of that answer.
pub const PANIC_DETAILS: &str = "tollgate_panic";

/// Sends every panic's message and location to Envoy's log (the default hook prints to
/// stderr, which Envoy's log does not carry). Set once, from `program_init`; it replaces the
/// hook of this module's copy of the standard library only, not Envoy's or another module's.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        abi::log(
            LogLevel::ERROR,
            &format!("tollgate native module panicked: {info}"),
        );
    }));
}

/// Runs a hook of `filter`'s stream. If `hook` panics, the stream is marked answered, the
/// request is answered 503 (Envoy resets the stream instead if the response has started), and
/// the hook returns `stop`. A stream already answered gets `proceed` without running `hook`; a
/// stream whose filter could not be made is answered now.
pub fn answering<R>(
    name: &str,
    stream: &Stream,
    filter: &Filter,
    proceed: R,
    stop: R,
    hook: impl FnOnce() -> R,
) -> R {
    match filter.state() {
        StreamState::Answered => return proceed,
        StreamState::Broken => {
            filter.mark_answered();
            abi::log(
                LogLevel::ERROR,
                &format!("tollgate: no filter for this stream (a panic in on_http_filter_new); {name} answers 503"),
            );
            answer_unavailable(stream);
            return stop;
        }
        StreamState::Running => {}
    }
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(status) => status,
        Err(_) => {
            // Before the answer: sending it runs this stream's response hooks, which must pass.
            filter.mark_answered();
            abi::log(
                LogLevel::ERROR,
                &format!("tollgate: a panic in {name} was caught; the request is answered 503"),
            );
            answer_unavailable(stream);
            stop
        }
    }
}

fn answer_unavailable(stream: &Stream) {
    let answered = catch_unwind(AssertUnwindSafe(|| {
        stream.send_response(
            503,
            &[("content-type", b"application/json")],
            PANIC_BODY,
            PANIC_DETAILS,
        );
    }));
    if answered.is_err() {
        abi::log(
            LogLevel::ERROR,
            "tollgate: the 503 after a panic could not be sent",
        );
    }
}

/// Runs a hook that has no request to answer (configuration, creation, destruction, stream
/// completion): a panic is logged and `fallback` returned.
pub fn quiet<R>(name: &str, fallback: R, hook: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(value) => value,
        Err(_) => {
            abi::log(
                LogLevel::ERROR,
                &format!("tollgate: a panic in {name} was caught"),
            );
            fallback
        }
    }
}
