//! The fetch of signing keys as a state machine the host drives: which call to make and when
//! (OpenID discovery, then its `jwks_uri`; or the JWKS URL directly), what to make of each
//! answer, the last good key set, and the requests waiting for a fetch to end. The host only
//! dispatches the calls, hands back the answers and wakes the requests it is told to, so every
//! decision here is tested without Envoy.

use super::failure_log::FailureLog;
use super::fetched::{key_set_from_body, SkippedKey};
use super::key_waiters::KeyWaiters;
use super::keys::KeySet;
use super::remote::{jwks_target_from_discovery, FetchError, HttpTarget, RemoteKeys, RemoteKind};
use super::schedule::RemoteKeyState;
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
    /// The fetch ended: how many keys the new set holds, or why the last good set is kept;
    /// and the keys of the answer that were skipped as unusable (to log, one line each).
    Finished {
        result: Result<usize, FetchError>,
        skipped: Vec<SkippedKey>,
    },
}

/// Whether a request whose token the keys may not know yet waits for a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWait {
    /// No fetch is under way and the bound (`unknown_kid_refetch_s`) allows none now:
    /// decide with the keys at hand.
    Refused,
    /// Wait: for the fetch under way, or for one the host should start at once
    /// (`fetch_now`: the next tick dispatches it, so bring the tick forward).
    Waiting { fetch_now: bool },
}

impl KeyWait {
    /// Whether the request waits.
    pub fn waits(self) -> bool {
        matches!(self, Self::Waiting { .. })
    }

    /// Whether the host should bring the fetch forward (dispatch it at once).
    pub fn fetch_now(self) -> bool {
        matches!(self, Self::Waiting { fetch_now: true })
    }
}

/// The fetch of one key source, per VM.
#[derive(Debug)]
pub struct KeyFetch {
    source: RemoteKeys,
    state: RemoteKeyState,
    /// Calls in flight, by the host's token.
    pending: HashMap<u32, Stage>,
    waiters: KeyWaiters,
    log: FailureLog,
    /// The generation of the newest set parsed (each answer's set gets the next one).
    generation: u64,
}

impl KeyFetch {
    pub fn new(source: RemoteKeys) -> Self {
        Self {
            source,
            state: RemoteKeyState::default(),
            pending: HashMap::new(),
            waiters: KeyWaiters::default(),
            log: FailureLog::default(),
            generation: 0,
        }
    }

    /// Whether `other` fetches the same document through the same cluster.
    pub fn same_source(&self, other: &KeyFetch) -> bool {
        self.source.kind == other.source.kind
            && self.source.target == other.source.target
            && self.source.cluster == other.source.cluster
    }

    /// A new configuration with the same source starts from the last good set of the
    /// previous one, not from nothing: a configuration push must not drop the keys (and
    /// with them JWT authentication, while the provider is slow or down). Returns how many
    /// keys were taken over.
    pub fn take_over(&mut self, previous: &KeyFetch) -> Option<usize> {
        if !self.same_source(previous) || self.state.keys.is_some() {
            return None;
        }
        let keys = previous.state.keys.clone()?;
        self.generation = self.generation.max(previous.generation);
        let count = keys.len();
        self.state.keys = Some(keys);
        Some(count)
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

    /// The host dispatched `call` under `token`.
    pub fn dispatched(&mut self, call: &KeyCall, token: u32, now_s: u64) {
        if call.stage == Stage::Discovery || self.source.kind == RemoteKind::JwksUri {
            self.state.started(now_s);
        }
        self.pending.insert(token, call.stage);
    }

    /// The host would not dispatch the first call of a fetch (no such cluster, or not yet):
    /// the next attempt backs off.
    pub fn not_dispatched(&mut self, now_s: u64) {
        self.state.refused(now_s);
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
        let body = match (body, stage) {
            (Err(err), _) => return self.finish(Err(err), Vec::new()),
            (Ok(body), Stage::Discovery) => {
                return match jwks_target_from_discovery(&body) {
                    Ok(jwks_target) => Answered::Next(self.call(Stage::Jwks, jwks_target)),
                    Err(err) => self.finish(Err(err), Vec::new()),
                }
            }
            (Ok(body), Stage::Jwks) => body,
        };
        self.generation = self.generation.saturating_add(1);
        match key_set_from_body(&body, self.generation) {
            Ok(fetched) => self.finish(Ok(fetched.set), fetched.skipped),
            Err((err, skipped)) => self.finish(Err(err), skipped),
        }
    }

    fn finish(&mut self, result: Result<KeySet, FetchError>, skipped: Vec<SkippedKey>) -> Answered {
        let result = self.state.finished(result);
        if result.is_ok() {
            self.log.succeeded();
        }
        Answered::Finished { result, skipped }
    }

    /// A failure of this source at `now_s`: `Some(n)` when it is to be logged (the first at
    /// once, then at most one a minute), `n` being the failures left unlogged meanwhile.
    pub fn failure_to_log(&mut self, now_s: u64) -> Option<u64> {
        self.log.failed(now_s)
    }

    /// The request `waiter` (a host context id) bears a token the keys at hand may not know
    /// (an unknown `kid`, or no `kid` and no key verifies it): it waits for the fetch under
    /// way, or for one started now if the bound allows, at most the source's `timeout_ms`.
    pub fn wait_for_keys(&mut self, waiter: u32, now_ms: u64) -> KeyWait {
        let now_s = now_ms / 1000;
        let fetch_now = if self.state.in_flight(&self.source, now_s) || self.state.wanted() {
            false
        } else if self.state.refetch_allowed(&self.source, now_s) {
            self.state.want();
            true
        } else {
            return KeyWait::Refused;
        };
        if !self
            .waiters
            .add(waiter, now_ms.saturating_add(self.source.timeout_ms))
        {
            // Too many waiting in this worker already: this one gets its answer now.
            if fetch_now {
                self.state.unwant();
            }
            return KeyWait::Refused;
        }
        KeyWait::Waiting { fetch_now }
    }

    /// `waiter` no longer waits (the host could not bring the fetch forward).
    pub fn stop_waiting(&mut self, waiter: u32) {
        self.waiters.remove(waiter);
        if self.waiters.is_empty() {
            self.state.unwant();
        }
    }

    /// The waiting requests to decide again now: all of them once no fetch is under way or
    /// asked for (it ended, well or not), else those whose wait is over.
    pub fn ready_waiters(&mut self, now_ms: u64) -> Vec<u32> {
        let now_s = now_ms / 1000;
        if self.state.in_flight(&self.source, now_s) || self.state.wanted() {
            self.waiters.take_overdue(now_ms)
        } else {
            self.waiters.take_all()
        }
    }

    /// Requests waiting for keys.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteKeysConfig;
    use crate::jwt::keys::{JwkError, JwksError};
    use crate::testing::tokens::public_jwks;

    /// One P-256 key, as a provider publishes it.
    fn jwks() -> Vec<u8> {
        public_jwks(&["ec-256"]).to_string().into_bytes()
    }
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

    fn body(bytes: impl Into<Vec<u8>>) -> impl FnOnce(usize) -> Option<Vec<u8>> {
        let bytes = bytes.into();
        move |_| Some(bytes)
    }

    fn finished(result: Result<usize, FetchError>) -> Answered {
        Answered::Finished {
            result,
            skipped: Vec::new(),
        }
    }

    /// A fetch of `source` that got one key at `now_s` (token 1).
    fn fetched(kind: RemoteKind, now_s: u64) -> KeyFetch {
        let mut fetch = KeyFetch::new(source(kind));
        let call = fetch.due(now_s).unwrap();
        fetch.dispatched(&call, 1, now_s);
        let answer = match kind {
            RemoteKind::JwksUri => jwks(),
            RemoteKind::OpenIdConfig => DISCOVERY.to_vec(),
        };
        let size = answer.len();
        let mut answered = fetch.answered(1, Some(b"200"), size, body(answer));
        if let Answered::Next(next) = answered {
            fetch.dispatched(&next, 2, now_s);
            answered = fetch.answered(2, Some(b"200"), jwks().len(), body(jwks()));
        }
        assert_eq!(answered, finished(Ok(1)));
        fetch
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
            fetch.answered(8, Some(b"200"), jwks().len(), body(jwks())),
            finished(Ok(1))
        );
        assert_eq!(fetch.keys().map(|k| k.len()), Some(1));
        assert_eq!(fetch.due(3699), None);
        assert!(fetch.due(3700).is_some(), "refreshed after the interval");
    }

    #[test]
    fn answers_that_are_not_ours_change_nothing() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        assert_eq!(
            fetch.answered(3, Some(b"200"), 2, body(*b"{}")),
            Answered::NotOurs
        );
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 4, 0);
        assert_eq!(
            fetch.answered(3, Some(b"200"), 2, body(*b"{}")),
            Answered::NotOurs
        );
        assert_eq!(
            fetch.answered(4, Some(b"200"), jwks().len(), body(jwks())),
            finished(Ok(1))
        );
        assert_eq!(
            fetch.answered(4, Some(b"200"), jwks().len(), body(jwks())),
            Answered::NotOurs,
            "an answer is taken once"
        );
    }

    #[test]
    fn failures_keep_the_last_good_set_and_retry_sooner() {
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
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
                finished(Err(expected))
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
            Answered::Finished {
                result: Err(FetchError::TooLarge(_)),
                ..
            }
        ));
    }

    #[test]
    fn discovery_errors_and_a_refused_jwks_call_end_the_fetch() {
        let mut fetch = KeyFetch::new(source(RemoteKind::OpenIdConfig));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        assert_eq!(
            fetch.answered(1, Some(b"200"), 2, body(*b"{}")),
            finished(Err(FetchError::NoJwksUri))
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
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        assert_eq!(fetch.due(300), None);
        fetch.saw_unknown_kid();
        assert_eq!(fetch.due(299), None);
        assert!(fetch.due(300).is_some());
    }

    #[test]
    fn unusable_keys_are_reported_and_the_rest_used() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        let mut set = public_jwks(&["ec-256", "rsa-1"]);
        let keys = set["keys"].as_array_mut().unwrap();
        keys.push(serde_json::json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB" }));
        keys.push(serde_json::json!({ "kty": "oct", "kid": "secret", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE" }));
        let answer = set.to_string().into_bytes();
        let answered = fetch.answered(1, Some(b"200"), answer.len(), body(answer));
        let Answered::Finished { result, skipped } = answered else {
            panic!("{answered:?}");
        };
        assert_eq!(result, Ok(2));
        let reasons: Vec<(Option<&str>, &JwkError)> = skipped
            .iter()
            .map(|s| (s.kid.as_deref(), &s.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    Some("p521"),
                    &JwkError::UnsupportedEcCurve {
                        crv: Some("P-521".into())
                    }
                ),
                (Some("secret"), &JwkError::SymmetricKeyFetched),
            ]
        );
    }

    #[test]
    fn each_fetched_set_is_a_new_generation() {
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        let first = fetch.keys().unwrap().generation();
        let call = fetch.due(3600).unwrap();
        fetch.dispatched(&call, 5, 3600);
        fetch.answered(5, Some(b"200"), jwks().len(), body(jwks()));
        assert!(fetch.keys().unwrap().generation() > first);
        assert!(first > 0, "0 is the inline set's");
    }

    #[test]
    fn a_new_configuration_takes_over_the_last_good_set_of_the_same_source() {
        let old = fetched(RemoteKind::JwksUri, 0);
        let mut new = KeyFetch::new(source(RemoteKind::JwksUri));
        assert_eq!(new.take_over(&old), Some(1));
        assert_eq!(new.keys().map(|k| k.len()), Some(1));
        // The new plugin still fetches at once; a failure keeps the set it took over.
        let call = new.due(10).unwrap();
        new.dispatched(&call, 9, 10);
        new.answered(9, Some(b"503"), 0, body(Vec::new()));
        assert_eq!(new.keys().map(|k| k.len()), Some(1));
        // Another document, or another cluster, is another source.
        let mut other = KeyFetch::new(source(RemoteKind::OpenIdConfig));
        assert_eq!(other.take_over(&old), None);
        let mut config = source(RemoteKind::JwksUri);
        config.cluster = "idp-2".into();
        assert_eq!(KeyFetch::new(config).take_over(&old), None);
        // Nothing to take over from a source that never got keys.
        let empty = KeyFetch::new(source(RemoteKind::JwksUri));
        assert_eq!(
            KeyFetch::new(source(RemoteKind::JwksUri)).take_over(&empty),
            None
        );
    }

    #[test]
    fn a_refused_dispatch_backs_off_and_is_logged_once_a_minute() {
        let mut fetch = KeyFetch::new(source(RemoteKind::JwksUri));
        let mut now = 0;
        let mut attempts = Vec::new();
        let mut logged = Vec::new();
        while now < 300 {
            if fetch.due(now).is_some() {
                attempts.push(now);
                fetch.not_dispatched(now);
                if let Some(unlogged) = fetch.failure_to_log(now) {
                    logged.push((now, unlogged));
                }
            }
            now += 1;
        }
        assert_eq!(attempts, vec![0, 1, 3, 7, 15, 31, 63, 123, 183, 243]);
        assert_eq!(logged, vec![(0, 0), (63, 5), (123, 0), (183, 0), (243, 0)]);
    }

    #[test]
    fn a_request_with_an_unknown_kid_waits_for_one_shared_fetch() {
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        // Within the bound (300 s after the last fetch): refused at once, as before.
        assert_eq!(fetch.wait_for_keys(11, 299_000), KeyWait::Refused);
        assert_eq!(fetch.waiting(), 0);
        // Past it: the first request asks for a fetch now, the next ones join it.
        assert_eq!(
            fetch.wait_for_keys(11, 300_000),
            KeyWait::Waiting { fetch_now: true }
        );
        assert_eq!(
            fetch.wait_for_keys(12, 300_100),
            KeyWait::Waiting { fetch_now: false }
        );
        assert!(
            fetch.ready_waiters(300_200).is_empty(),
            "asked, not started"
        );
        let call = fetch.due(300).unwrap();
        fetch.dispatched(&call, 2, 300);
        assert_eq!(fetch.due(300), None, "one fetch for all");
        assert_eq!(
            fetch.wait_for_keys(13, 300_500),
            KeyWait::Waiting { fetch_now: false }
        );
        assert!(fetch.ready_waiters(301_000).is_empty(), "in flight");
        assert_eq!(
            fetch.answered(2, Some(b"200"), jwks().len(), body(jwks())),
            finished(Ok(1))
        );
        assert_eq!(fetch.ready_waiters(301_000), vec![11, 12, 13]);
        assert!(fetch.ready_waiters(301_000).is_empty(), "woken once");
    }

    #[test]
    fn a_failed_fetch_also_ends_the_wait() {
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        fetch.wait_for_keys(11, 400_000);
        let call = fetch.due(400).unwrap();
        fetch.dispatched(&call, 2, 400);
        fetch.answered(2, Some(b"503"), 0, body(Vec::new()));
        assert_eq!(fetch.ready_waiters(400_100), vec![11]);
        // A dispatch the host refuses ends it too.
        fetch.wait_for_keys(12, 800_000);
        assert!(fetch.due(800).is_some());
        fetch.not_dispatched(800);
        assert_eq!(fetch.ready_waiters(800_000), vec![12]);
    }

    #[test]
    fn a_wait_ends_after_the_source_timeout() {
        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        fetch.wait_for_keys(11, 400_000);
        let call = fetch.due(400).unwrap();
        fetch.dispatched(&call, 2, 400);
        fetch.wait_for_keys(12, 401_000);
        assert!(fetch.ready_waiters(401_999).is_empty());
        assert_eq!(fetch.ready_waiters(402_000), vec![11], "timeout_ms 2000");
        assert_eq!(fetch.ready_waiters(403_000), vec![12]);
    }

    #[test]
    fn no_wait_without_a_refetch_bound_or_after_giving_up() {
        let mut never = source(RemoteKind::JwksUri);
        never.unknown_kid_refetch_s = 0;
        let mut fetch = KeyFetch::new(never);
        let call = fetch.due(0).unwrap();
        fetch.dispatched(&call, 1, 0);
        fetch.answered(1, Some(b"200"), jwks().len(), body(jwks()));
        assert_eq!(fetch.wait_for_keys(11, 10_000_000), KeyWait::Refused);

        let mut fetch = fetched(RemoteKind::JwksUri, 0);
        assert_eq!(
            fetch.wait_for_keys(11, 400_000),
            KeyWait::Waiting { fetch_now: true }
        );
        fetch.stop_waiting(11);
        assert_eq!(fetch.waiting(), 0);
        assert_eq!(
            fetch.due(400),
            None,
            "nobody waits: the schedule alone decides"
        );
    }
}
