//! The proxy-wasm glue: the only module that talks to Envoy. It hands headers to
//! `pipeline::decide` and carries out the verdict; it holds no policy.

mod http;
mod key_fetcher;
mod metrics;
mod root;
mod shared_data;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic aborts the VM and Envoy then fails every request on this worker: make sure the
    // reason reaches the log.
    std::panic::set_hook(Box::new(|info| {
        log::error!("tollgate panicked: {info}");
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::TollgateRoot::default()) });
}}
