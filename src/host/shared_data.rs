//! The counter store in Envoy: proxy-wasm shared data, process-wide per `vm_id`, with CAS.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use tollgate_core::limits::{CounterStore, StoreError};

pub struct SharedData;

impl CounterStore for SharedData {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(|_| StoreError::Unavailable)
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}
