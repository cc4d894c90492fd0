//! Per-request glue: headers in, verdict out, edits applied.

use super::shared_data::SharedData;
use crate::jwt::token_cache::TokenCache;
use crate::pipeline::{decide, Clock, RequestEnv, Verdict};
use crate::plan::Plan;
use crate::rewrite::HeaderEdit;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// proxy-wasm `get_current_time`, through the `Result` call (the SDK's trait method unwraps).
struct HostClock;

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        // Without a clock every token counts as expired: fail closed, never open.
        proxy_wasm::hostcalls::get_current_time().map_or(u64::MAX, |now| {
            now.duration_since(UNIX_EPOCH).map_or(u64::MAX, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
        })
    }
}

pub struct TollgateHttp {
    plan: Rc<Plan>,
    tokens: Rc<RefCell<TokenCache>>,
    response_edits: Vec<HeaderEdit>,
}

impl TollgateHttp {
    pub fn new(plan: Rc<Plan>, tokens: Rc<RefCell<TokenCache>>) -> Self {
        Self {
            plan,
            tokens,
            response_edits: Vec::new(),
        }
    }
}

impl Context for TollgateHttp {}

impl HttpContext for TollgateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The bytes variant: the SDK's text variant panics on a header value that is not UTF-8.
        let headers = self.get_http_request_headers_bytes();
        // A VM runs one callback at a time, so the cache is free here; were it not, verify
        // without caching rather than skip anything.
        let mut uncached = TokenCache::default();
        let mut shared = self.tokens.try_borrow_mut().ok();
        let tokens = shared.as_deref_mut().unwrap_or(&mut uncached);
        let mut env = RequestEnv::new(&HostClock, tokens, &SharedData);
        let verdict = decide(&self.plan, &headers, &mut env);
        drop(shared);
        match verdict {
            Verdict::Deny(denial) => {
                let body = denial.body();
                let mut reply_headers: Vec<(&str, &str)> =
                    vec![("content-type", "application/json")];
                reply_headers.extend(denial.headers.iter().map(|(n, v)| (*n, v.as_str())));
                self.send_http_response(denial.status, reply_headers, Some(body.as_bytes()));
                Action::Pause
            }
            Verdict::Forward(forward) => {
                for edit in &forward.request_edits {
                    apply(
                        edit,
                        |n, v| self.set_http_request_header(n, v),
                        |n, v| self.add_http_request_header(n, v),
                    );
                }
                if let Some(path) = &forward.path {
                    self.set_http_request_header(":path", Some(path));
                }
                self.response_edits = forward.response_edits;
                Action::Continue
            }
            Verdict::PassThrough => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for edit in std::mem::take(&mut self.response_edits) {
            apply(
                &edit,
                |n, v| self.set_http_response_header(n, v),
                |n, v| self.add_http_response_header(n, v),
            );
        }
        Action::Continue
    }
}

fn apply(edit: &HeaderEdit, set: impl Fn(&str, Option<&str>), add: impl Fn(&str, &str)) {
    match edit {
        HeaderEdit::Set(name, value) => set(name, Some(value)),
        HeaderEdit::Append(name, value) => add(name, value),
        HeaderEdit::Remove(name) => set(name, None),
    }
}
