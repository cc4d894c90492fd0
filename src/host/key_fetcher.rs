//! Fetches signing keys from the identity provider through an Envoy cluster, per VM: OpenID
//! discovery, then its `jwks_uri`; or a JWKS URL directly. Driven by the root context's tick;
//! what to do with the answers is `tollgate_core::jwt::remote`'s.

use super::http::HostClock;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tollgate_core::jwt::remote::{
    jwks_target_from_discovery, key_set_from_body, HttpTarget, RemoteKeyState, RemoteKeys,
    RemoteKind,
};
use tollgate_core::pipeline::Clock;

/// Larger answers are refused (Entra's JWKS is a few KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
enum Stage {
    Discovery,
    Jwks,
}

#[derive(Default)]
pub struct KeyFetcher {
    /// Where keys come from; `None` when the configuration has only inline keys.
    remote: Option<Rc<RemoteKeys>>,
    pub state: Rc<RefCell<RemoteKeyState>>,
    pending: HashMap<u32, Stage>,
}

impl KeyFetcher {
    pub fn new(remote: Option<RemoteKeys>) -> Self {
        Self {
            remote: remote.map(Rc::new),
            ..Self::default()
        }
    }

    pub fn fetches(&self) -> bool {
        self.remote.is_some()
    }

    /// Starts a fetch when one is due. A call the host refuses to dispatch (the cluster not
    /// ready yet) is tried again at the next tick.
    pub fn tick(&mut self) {
        if let Some(remote) = self.remote.clone() {
            self.tick_with(&remote);
        }
    }

    fn tick_with(&mut self, remote: &RemoteKeys) {
        let now_s = HostClock.now_ms() / 1000;
        if !self
            .state
            .try_borrow()
            .is_ok_and(|state| state.due(remote, now_s))
        {
            return;
        }
        let stage = match remote.kind {
            RemoteKind::OpenIdConfig => Stage::Discovery,
            RemoteKind::JwksUri => Stage::Jwks,
        };
        if self.dispatch(remote, &remote.target, stage) {
            if let Ok(mut state) = self.state.try_borrow_mut() {
                state.started(now_s);
            }
        }
    }

    fn dispatch(&mut self, remote: &RemoteKeys, target: &HttpTarget, stage: Stage) -> bool {
        let headers = vec![
            (":method", "GET"),
            (":path", target.path.as_str()),
            (":authority", target.authority.as_str()),
            ("accept", "application/json"),
        ];
        match hostcalls::dispatch_http_call(
            &remote.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(remote.timeout_ms),
        ) {
            Ok(token) => {
                self.pending.insert(token, stage);
                true
            }
            Err(status) => {
                // Normal while Envoy is still starting (or in --mode validate): the next tick
                // tries again.
                log::info!(
                    "tollgate: cluster {} not callable yet for signing keys ({status:?}); retrying",
                    remote.cluster
                );
                false
            }
        }
    }

    /// An answer from the identity provider. Returns whether the call was ours.
    pub fn on_response(&mut self, token: u32, body_size: usize) -> bool {
        match self.remote.clone() {
            Some(remote) => self.answer(&remote, token, body_size),
            None => false,
        }
    }

    fn answer(&mut self, remote: &RemoteKeys, token: u32, body_size: usize) -> bool {
        let Some(stage) = self.pending.remove(&token) else {
            return false;
        };
        let result = self.read_answer(body_size).and_then(|body| match stage {
            Stage::Discovery => jwks_target_from_discovery(&body).map(Some),
            Stage::Jwks => key_set_from_body(&body).map(|keys| {
                self.finish(Ok(keys));
                None
            }),
        });
        match result {
            Ok(Some(jwks_target)) => {
                // Discovery done: fetch its jwks_uri through the same cluster.
                if !self.dispatch(remote, &jwks_target, Stage::Jwks) {
                    self.finish(Err("cannot call the jwks_uri".to_string()));
                }
            }
            Ok(None) => {}
            Err(err) => self.finish(Err(err)),
        }
        true
    }

    fn read_answer(&self, body_size: usize) -> Result<Vec<u8>, String> {
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        if status != b"200" {
            return Err(format!(
                "identity provider answered {}",
                String::from_utf8_lossy(&status)
            ));
        }
        if body_size > MAX_BODY_BYTES {
            return Err(format!("answer of {body_size} bytes is too large"));
        }
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .ok_or_else(|| "empty answer".to_string())
    }

    fn finish(&self, result: Result<tollgate_core::jwt::keys::KeySet, String>) {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        match state.finished(result) {
            Ok(count) => log::info!("tollgate: fetched {count} signing keys"),
            Err(err) => {
                log::error!("tollgate: signing key fetch failed ({err}); keeping the last good set")
            }
        }
    }
}
