//! The fetch of signing keys as a state machine the host drives: which call to make and when
//! (OpenID discovery, then its `jwks_uri`; or the JWKS URL directly), what to make of each
//! answer, and the last good key set. The host only dispatches the calls and hands back the
//! answers, so every decision here is tested without Envoy.

use super::keys::KeySet;
use super::remote::{
    jwks_target_from_discovery, key_set_from_body, FetchError, HttpTarget, RemoteKeyState,
    RemoteKeys, RemoteKind,
};
use std::collections::HashMap;
use std::rc::Rc;

/// Larger answers are refused unread (Entra's JWKS is a few KiB).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Which document a call fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Discovery,
    Jwks,
}

/// An HTTP GET the host should make through `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCall {
    pub stage: Stage,
    pub cluster: String,
    pub target: HttpTarget,
    pub timeout_ms: u64,
}

impl KeyCall {
    /// The request headers of the call.
    pub fn headers(&self) -> [(&str, &str); 4] {
        [
            (":method", "GET"),
            (":path", self.target.path.as_str()),
            (":authority", self.target.authority.as_str()),
            ("accept", "application/json"),
        ]
    }
}

/// What an answer leads to.
#[derive(Debug, PartialEq)]
pub enum Answered {
    /// Not a call of this fetch.
    NotOurs,
    /// Discovery done: fetch its `jwks_uri` now.
    Next(KeyCall),
    /// The fetch ended: how many keys the new set holds, or why the last good set is kept.
    Finished(Result<usize, FetchError>),
}

/// The fetch of one key source, per VM.
#[derive(Debug)]
pub struct KeyFetch {
    source: RemoteKeys,
    state: RemoteKeyState,
    /// Calls in flight, by the host's token.
    pending: HashMap<u32, Stage>,
}

impl KeyFetch {
    pub fn new(source: RemoteKeys) -> Self {
        Self {
            source,
            state: RemoteKeyState::default(),
            pending: HashMap::new(),
        }
    }

    /// The last good key set, if a fetch has succeeded yet.
    pub fn keys(&self) -> Option<Rc<KeySet>> {
        self.state.keys.clone()
    }

    /// A token named a `kid` no key has: refetch at the next tick the schedule allows.
    pub fn saw_unknown_kid(&mut self) {
        self.state.saw_unknown_kid();
    }

    /// The call to make now, if a fetch is due.
    pub fn due(&self, now_s: u64) -> Option<KeyCall> {
        if !self.state.due(&self.source, now_s) {
            return None;
        }
        let stage = match self.source.kind {
            RemoteKind::OpenIdConfig => Stage::Discovery,
            RemoteKind::JwksUri => Stage::Jwks,
        };
        Some(self.call(stage, self.source.target.clone()))
    }

    fn call(&self, stage: Stage, target: HttpTarget) -> KeyCall {
        KeyCall {
            stage,
            cluster: self.source.cluster.clone(),
            target,
            timeout_ms: self.source.timeout_ms,
        }
    }

    /// The host dispatched `call` under `token`. A call the host refuses is not reported:
    /// the fetch is then still due at the next tick.
    pub fn dispatched(&mut self, call: &KeyCall, token: u32, now_s: u64) {
        if call.stage == Stage::Discovery || self.source.kind == RemoteKind::JwksUri {
            self.state.started(now_s);
        }
        self.pending.insert(token, call.stage);
    }

    /// The host would not dispatch the `jwks_uri` call that discovery led to: the fetch failed.
    pub fn next_refused(&mut self) -> Result<usize, FetchError> {
        self.state.finished(Err(FetchError::JwksUriNotCallable))
    }

    /// An answer arrived for `token`, with its `:status` and body size; `read_body` reads the
    /// body, and is called only when the answer is worth reading.
    pub fn answered(
        &mut self,
        token: u32,
        status: Option<&[u8]>,
        body_size: usize,
        read_body: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) -> Answered {
        let Some(stage) = self.pending.remove(&token) else {
            return Answered::NotOurs;
        };
        let body = match status {
            Some(b"200") if body_size > MAX_ANSWER_BYTES => Err(FetchError::TooLarge(body_size)),
            Some(b"200") => read_body(body_size).ok_or(FetchError::Empty),
            other => Err(FetchError::Status(
                String::from_utf8_lossy(other.unwrap_or_default()).into_owned(),
            )),
        };
        let result = body.and_then(|body| match stage {
            Stage::Discovery => jwks_target_from_discovery(&body).map(Err),
            Stage::Jwks => key_set_from_body(&body).map(Ok),
        });
        match result {
            Ok(Err(jwks_target)) => Answered::Next(self.call(Stage::Jwks, jwks_target)),
            Ok(Ok(keys)) => Answered::Finished(self.state.finished(Ok(keys))),
            Err(err) => Answered::Finished(self.state.finished(Err(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteKeysConfig;
    use crate::jwt::keys::JwksError;

    const JWKS: &[u8] =
        br#"{"keys":[{"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"}]}"#;
    const DISCOVERY: &[u8] = br#"{"issuer":"x","jwks_uri":"https://idp.example/keys"}"#;

    fn source(kind: RemoteKind) -> RemoteKeys {
        let url = match kind {
            RemoteKind::OpenIdConfig => "https://idp.example/.well-known/openid-configuration",
            RemoteKind::JwksUri => "https://idp.example/keys",
        };
        let config = RemoteKeysConfig {
            url: url.into(),
            cluster: "idp".into(),
            refresh_interval_s: Some(3600),
            timeout_ms: Some(2000),
        };
        RemoteKeys::compile(kind, config, 300, "jwt.x").unwrap()
    }

    fn body(bytes: &'static [u8]) -> impl FnOnce(usize) -> Option<Vec<u8>> {
        move |_| Some(bytes.to_vec())
    }

    #[test]
    fn discovery_then_keys_through_the_same_cluster() {
        let mut fetch = KeyFetch::new(source(RemoteKind::OpenIdConfig));
        let call = fetch.due(100).unwrap();
        assert_eq!(call.stage, Stage::Discovery);
        assert_eq!(call.cluster, "idp");
        assert_eq!(call.timeout_ms, 2000);
        assert_eq!(
            call.headers(),
            [
                (":method", "GET"),
                (":path", "/.well-known/openid-configuration"),
                (":authority", "idp.example"),
                ("accept", "application/json"),
            ]
        );
        fetch.dispatched(&call, 7, 100);
        assert_eq!(fetch.due(101), None, "in flight");
        let next = match fetch.answered(7, Some(b"200"), DISCOVERY.len(), body(DISCOVERY)) {
            Answered::Next(next) => next,
            other => panic!("{other:?}"),
        };
        assert_eq!(next.stage, Stage::Jwks);
        assert_eq!(next.target.path, "/keys");
        fetch.dispatched(&next, 8, 100);
        assert_eq!(
            fetch.answered(8, Some(b"200"), JWKS.len(), body(JWKS)),
            Answered::Finished(Ok(1))
        );
        assert_eq!(fetch.keys().map(|k| k.len()), Some(1));
        assert_eq!(fetch.due(3699), None);
        assert!(fetch.due(3700).is_some(), "refreshed after the interval");
    }

    #[test]
    fn answers_that_are_not_ours_change_nothing() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        assert_eq!(
            fetch.answered(3, Some(b"200"), 2, body(b"{}")),
            Answered::NotOurs
        );
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 4, 0);
        assert_eq!(
            fetch.answered(3, Some(b"200"), 2, body(b"{}")),
            Answered::NotOurs
        );
        assert_eq!(
            fetch.answered(4, Some(b"200"), JWKS.len(), body(JWKS)),
            Answered::Finished(Ok(1))
        );
        assert_eq!(
            fetch.answered(4, Some(b"200"), JWKS.len(), body(JWKS)),
            Answered::NotOurs,
            "an answer is taken once"
        );
    }

    #[test]
    fn failures_keep_the_last_good_set_and_retry_sooner() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        assert_eq!(
            fetch.answered(1, Some(b"200"), JWKS.len(), body(JWKS)),
            Answered::Finished(Ok(1))
        );
        // (status, body size, body, the failure it makes)
        type Case<'a> = (Option<&'a [u8]>, usize, &'a [u8], FetchError);
        let cases: [Case; 5] = [
            (Some(b"503"), 2, b"{}", FetchError::Status("503".into())),
            (None, 2, b"{}", FetchError::Status(String::new())),
            (
                Some(b"200"),
                MAX_ANSWER_BYTES + 1,
                b"{}",
                FetchError::TooLarge(MAX_ANSWER_BYTES + 1),
            ),
            (
                Some(b"200"),
                4,
                b"nope",
                FetchError::JwksNotJson("expected ident at line 1 column 2".into()),
            ),
            (
                Some(b"200"),
                11,
                b"{\"keys\":[]}",
                FetchError::Jwks(JwksError::NoSigningKey),
            ),
        ];
        let mut now = 3600;
        for (token, (status, size, answer, expected)) in (10..).zip(cases) {
            let call = fetch.due(now).unwrap();
            fetch.dispatched(&call, token, now);
            let answer = answer.to_vec();
            assert_eq!(
                fetch.answered(token, status, size, move |_| Some(answer)),
                Answered::Finished(Err(expected))
            );
            assert_eq!(fetch.keys().map(|k| k.len()), Some(1), "last good set kept");
            assert_eq!(fetch.due(now + 9), None);
            now += 10;
        }
    }

    #[test]
    fn an_oversized_answer_is_never_read() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        let answered = fetch.answered(1, Some(b"200"), MAX_ANSWER_BYTES + 1, |_| {
            panic!("read an oversized body")
        });
        assert!(matches!(
            answered,
            Answered::Finished(Err(FetchError::TooLarge(_)))
        ));
    }

    #[test]
    fn discovery_errors_and_a_refused_jwks_call_end_the_fetch() {
        let mut fetch = KeyFetch::new(source(RemoteKind::OpenIdConfig));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        assert_eq!(
            fetch.answered(1, Some(b"200"), 2, body(b"{}")),
            Answered::Finished(Err(FetchError::NoJwksUri))
        );
        let call = fetch.due(10).unwrap();
        fetch.dispatched(&call, 2, 10);
        assert!(matches!(
            fetch.answered(2, Some(b"200"), DISCOVERY.len(), body(DISCOVERY)),
            Answered::Next(_)
        ));
        assert_eq!(fetch.next_refused(), Err(FetchError::JwksUriNotCallable));
        assert_eq!(fetch.due(19), None);
        assert!(fetch.due(20).is_some(), "retried like any failure");
    }

    #[test]
    fn an_unknown_kid_brings_the_refetch_forward() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        fetch.answered(1, Some(b"200"), JWKS.len(), body(JWKS));
        assert_eq!(fetch.due(300), None);
        fetch.saw_unknown_kid();
        assert_eq!(fetch.due(299), None);
        assert!(fetch.due(300).is_some());
    }
}
