//! The C ABI of Envoy's dynamic modules, as Envoy 1.40 implements it (ABI version "v0.2.0"),
//! for an HTTP filter: the types, the callbacks this module imports from Envoy, safe wrappers
//! around the ones it calls, and (in `hooks`) the event hooks it exports.
//!
//! This is the only module of the crate allowed to use `unsafe` (the crate denies it
//! elsewhere, see Cargo.toml). Everything here follows
//! `source/extensions/dynamic_modules/abi/abi.h` of envoyproxy/envoy; the header read was not
//! the v1.40.0 tag's, so every declaration was checked against what the 1.40 binary itself
//! says: the names it exports (`nm -D --defined-only`, also what
//! tests/integration/test_dynamic_module_abi.py checks on every run) and the function-pointer
//! types of the hooks it resolves. docs/development.md lists where the header and the binary
//! differ.
//!
//! C types on an LP64 Unix (x86_64 Linux is the one checked against an Envoy binary):
//! `size_t` is `usize`, `uint64_t` is `u64` (both are the binary's `unsigned long`, 8 bytes),
//! `uint32_t` is `u32`, `bool` is `bool` (C `_Bool`, one byte), a C `enum` is 4 bytes (its
//! enumerators are small and non-negative). Enums are declared as
//! `#[repr(transparent)]` newtypes over `u32` with one constant per enumerator, never as Rust
//! enums: a value Envoy passes that a Rust enum does not list (a newer Envoy's new reason, say)
//! would be undefined behaviour in a Rust enum and is just a number here.

// Declared for the policy (headers, bodies, metrics, callouts, schedulers): most of the types,
// constants and callbacks have no caller yet.
#![allow(
    dead_code,
    reason = "the ABI is declared ahead of the policy that will use it"
)]

pub mod hooks;

use std::ffi::{c_char, c_void};

#[cfg(not(all(unix, target_pointer_width = "64")))]
compile_error!("the dynamic-module ABI is declared for LP64 Unix targets only");

/// The ABI version this module is built for: what Envoy 1.40 expects. Envoy only warns on a
/// mismatch ("ABI version ... is deprecated") and loads the module anyway.
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

// ------------------------------------------------------------------------------------------
// Types
// ------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_http_filter_config_envoy_ptr` (`void*`) and
/// `envoy_dynamic_module_type_http_filter_envoy_ptr` (`void*`): Envoy's objects.
pub type EnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_http_filter_config_module_ptr` and
/// `envoy_dynamic_module_type_http_filter_module_ptr` (`const void*`): this module's objects.
pub type ModulePtr = *const c_void;
/// `envoy_dynamic_module_type_http_filter_scheduler_module_ptr` (`void*`): allocated by Envoy,
/// deleted by the module.
pub type SchedulerPtr = *mut c_void;

/// `envoy_dynamic_module_type_envoy_buffer { const char* ptr; size_t length; }`: bytes owned
/// by Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_module_buffer { const char* ptr; size_t length; }`: bytes owned
/// by the module (borrowed by Envoy for the duration of a call).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    /// A null buffer: `set_header` with a null value removes the header.
    pub const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };

    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header { const char* key_ptr; size_t key_length;
/// const char* value_ptr; size_t value_length; }`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_module_http_header`: same layout, owned by the module.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl ModuleHttpHeader {
    pub fn of(name: &[u8], value: &[u8]) -> Self {
        Self {
            key_ptr: name.as_ptr().cast(),
            key_length: name.len(),
            value_ptr: value.as_ptr().cast(),
            value_length: value.len(),
        }
    }
}

/// A C enum: a `u32` newtype and one constant per enumerator, in the header's order.
macro_rules! c_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub u32);
        impl $name {
            $(pub const $variant: Self = Self($value);)+
        }
    };
}

c_enum!(
    /// `envoy_dynamic_module_type_log_level`.
    LogLevel { TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4, CRITICAL = 5, OFF = 6 }
);

c_enum!(
    /// `envoy_dynamic_module_type_http_header_type`.
    HeaderType { REQUEST_HEADER = 0, REQUEST_TRAILER = 1, RESPONSE_HEADER = 2, RESPONSE_TRAILER = 3 }
);

c_enum!(
    /// `envoy_dynamic_module_type_http_body_type`.
    BodyType {
        RECEIVED_REQUEST_BODY = 0,
        BUFFERED_REQUEST_BODY = 1,
        RECEIVED_RESPONSE_BODY = 2,
        BUFFERED_RESPONSE_BODY = 3,
    }
);

c_enum!(
    /// `envoy_dynamic_module_type_on_http_filter_request_headers_status` (and, same
    /// enumerators, `..._response_headers_status`): Envoy's `FilterHeadersStatus`.
    HeadersStatus {
        CONTINUE = 0,
        STOP_ITERATION = 1,
        CONTINUE_AND_DONT_END_STREAM = 2,
        STOP_ALL_ITERATION_AND_BUFFER = 3,
        STOP_ALL_ITERATION_AND_WATERMARK = 4,
    }
);

c_enum!(
    /// `envoy_dynamic_module_type_on_http_filter_request_body_status` (and
    /// `..._response_body_status`): Envoy's `FilterDataStatus`.
    BodyStatus {
        CONTINUE = 0,
        STOP_ITERATION_AND_BUFFER = 1,
        STOP_ITERATION_AND_WATERMARK = 2,
        STOP_ITERATION_NO_BUFFER = 3,
    }
);

c_enum!(
    /// `envoy_dynamic_module_type_on_http_filter_request_trailers_status` (and
    /// `..._response_trailers_status`): Envoy's `FilterTrailersStatus`.
    TrailersStatus { CONTINUE = 0, STOP_ITERATION = 1 }
);

c_enum!(
    /// `envoy_dynamic_module_type_http_callout_init_result`: what starting a callout returned.
    CalloutInitResult {
        SUCCESS = 0,
        MISSING_REQUIRED_HEADERS = 1,
        CLUSTER_NOT_FOUND = 2,
        DUPLICATE_CALLOUT_ID = 3,
        CANNOT_CREATE_REQUEST = 4,
    }
);

c_enum!(
    /// `envoy_dynamic_module_type_http_callout_result`: how a callout ended.
    CalloutResult { SUCCESS = 0, RESET = 1, EXCEED_RESPONSE_BUFFER_LIMIT = 2 }
);

c_enum!(
    /// `envoy_dynamic_module_type_http_stream_reset_reason`: why a streamed callout was reset.
    HttpStreamResetReason {
        CONNECTION_FAILURE = 0,
        CONNECTION_TERMINATION = 1,
        LOCAL_RESET = 2,
        LOCAL_REFUSED_STREAM_RESET = 3,
        OVERFLOW = 4,
        REMOTE_RESET = 5,
        REMOTE_REFUSED_STREAM_RESET = 6,
        PROTOCOL_ERROR = 7,
    }
);

c_enum!(
    /// `envoy_dynamic_module_type_metrics_result`.
    MetricsResult { SUCCESS = 0, METRIC_NOT_FOUND = 1, INVALID_LABELS = 2, FROZEN = 3 }
);

c_enum!(
    /// `envoy_dynamic_module_type_attribute_id`: the attributes of
    /// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes.
    /// Only the ones the policy will read; the numbers are the enumerators' positions in the
    /// header (two header versions agree on them, and the load test reads source address,
    /// port and request id through them from a live Envoy 1.40).
    AttributeId {
        REQUEST_PATH = 0,
        REQUEST_URL_PATH = 1,
        REQUEST_HOST = 2,
        REQUEST_SCHEME = 3,
        REQUEST_METHOD = 4,
        REQUEST_ID = 9,
        REQUEST_PROTOCOL = 10,
        REQUEST_QUERY = 11,
        RESPONSE_CODE = 15,
        SOURCE_ADDRESS = 24,
        SOURCE_PORT = 25,
        DESTINATION_ADDRESS = 26,
        DESTINATION_PORT = 27,
        CONNECTION_ID = 28,
        CONNECTION_MTLS = 29,
    }
);

// ------------------------------------------------------------------------------------------
// Callbacks: functions Envoy exports and this module imports. Only names that the Envoy 1.40
// binary exports (`nm -D --defined-only`: HTTP-filter callbacks, and the two common logging
// callbacks); the C prototype from abi.h above each.
// ------------------------------------------------------------------------------------------

// SAFETY: each declaration below repeats a prototype of abi.h (quoted above it) with the C
// types mapped as the module documentation says; the names are checked against the Envoy 1.40
// binary by tests/integration/test_dynamic_module_abi.py.
unsafe extern "C" {
    // ---- Logging (common callbacks; there is no HTTP-specific logging callback) ----

    /// `void envoy_dynamic_module_callback_log(envoy_dynamic_module_type_log_level level,
    /// envoy_dynamic_module_type_module_buffer message);`
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);

    /// `bool envoy_dynamic_module_callback_log_enabled(envoy_dynamic_module_type_log_level
    /// level);`
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    // ---- Headers and trailers (one set of callbacks for all four maps: `header_type`) ----

    /// `bool envoy_dynamic_module_callback_http_get_header(filter_envoy_ptr, header_type,
    /// module_buffer key, envoy_buffer* result_buffer, size_t index, size_t* optional_size);`
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result_buffer: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_get_header_values(filter_envoy_ptr,
    /// header_type, module_buffer key, envoy_buffer* result_buffer);` — `result_buffer` must
    /// hold as many buffers as `get_header`'s `optional_size` reported.
    pub fn envoy_dynamic_module_callback_http_get_header_values(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result_buffer: *mut EnvoyBuffer,
    ) -> bool;

    /// `size_t envoy_dynamic_module_callback_http_get_headers_size(filter_envoy_ptr,
    /// header_type);`
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
    ) -> usize;

    /// `bool envoy_dynamic_module_callback_http_get_headers(filter_envoy_ptr, header_type,
    /// envoy_http_header* result_headers);`
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_set_header(filter_envoy_ptr, header_type,
    /// module_buffer key, module_buffer value);` — replaces every value; a null `value`
    /// removes the header (there is no separate remove callback).
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_add_header(filter_envoy_ptr, header_type,
    /// module_buffer key, module_buffer value);`
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    // ---- Local replies ----

    /// `void envoy_dynamic_module_callback_http_send_response(filter_envoy_ptr, uint32_t
    /// status_code, module_http_header* headers_vector, size_t headers_vector_size,
    /// module_buffer body, module_buffer details);`
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter_envoy_ptr: EnvoyPtr,
        status_code: u32,
        headers_vector: *mut ModuleHttpHeader,
        headers_vector_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    // ---- Bodies (request/response, received chunk or buffered: `body_type`) ----

    /// `size_t envoy_dynamic_module_callback_http_get_body_size(filter_envoy_ptr, body_type);`
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter_envoy_ptr: EnvoyPtr,
        body_type: BodyType,
    ) -> usize;

    /// `size_t envoy_dynamic_module_callback_http_get_body_chunks_size(filter_envoy_ptr,
    /// body_type);`
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter_envoy_ptr: EnvoyPtr,
        body_type: BodyType,
    ) -> usize;

    /// `bool envoy_dynamic_module_callback_http_get_body_chunks(filter_envoy_ptr, body_type,
    /// envoy_buffer* result_buffer_vector);`
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter_envoy_ptr: EnvoyPtr,
        body_type: BodyType,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_append_body(filter_envoy_ptr, body_type,
    /// module_buffer data);`
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter_envoy_ptr: EnvoyPtr,
        body_type: BodyType,
        data: ModuleBuffer,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_drain_body(filter_envoy_ptr, body_type, size_t
    /// number_of_bytes);`
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter_envoy_ptr: EnvoyPtr,
        body_type: BodyType,
        number_of_bytes: usize,
    ) -> bool;

    // ---- Resuming a stopped stream ----

    /// `void envoy_dynamic_module_callback_http_filter_continue_decoding(filter_envoy_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter_envoy_ptr: EnvoyPtr);

    /// `void envoy_dynamic_module_callback_http_filter_continue_encoding(filter_envoy_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter_envoy_ptr: EnvoyPtr);

    // ---- Routing ----

    /// `void envoy_dynamic_module_callback_http_clear_route_cache(filter_envoy_ptr);` — the
    /// route is chosen again (after a request header the route may match on changed). A no-op
    /// outside the request path.
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter_envoy_ptr: EnvoyPtr);

    // ---- Attributes (source address, request id, ...) ----

    /// `bool envoy_dynamic_module_callback_http_filter_get_attribute_string(filter_envoy_ptr,
    /// attribute_id, envoy_buffer* result);`
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter_envoy_ptr: EnvoyPtr,
        attribute_id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;

    /// `bool envoy_dynamic_module_callback_http_filter_get_attribute_int(filter_envoy_ptr,
    /// attribute_id, uint64_t* result);`
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter_envoy_ptr: EnvoyPtr,
        attribute_id: AttributeId,
        result: *mut u64,
    ) -> bool;

    // ---- Metrics: defined on the config (main thread), labelled; recorded per stream or,
    // outside a request (a scheduled task), on the config ----

    /// `envoy_dynamic_module_type_metrics_result
    /// envoy_dynamic_module_callback_http_filter_config_define_counter(filter_config_envoy_ptr,
    /// module_buffer name, module_buffer* label_names, size_t label_names_length, size_t*
    /// counter_id_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        filter_config_envoy_ptr: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id_ptr: *mut usize,
    ) -> MetricsResult;

    /// `..._http_filter_config_define_gauge`: as `define_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        filter_config_envoy_ptr: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        gauge_id_ptr: *mut usize,
    ) -> MetricsResult;

    /// `..._http_filter_config_define_histogram`: as `define_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        filter_config_envoy_ptr: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        histogram_id_ptr: *mut usize,
    ) -> MetricsResult;

    /// `envoy_dynamic_module_type_metrics_result
    /// envoy_dynamic_module_callback_http_filter_increment_counter(filter_envoy_ptr, size_t
    /// id, module_buffer* label_values, size_t label_values_length, uint64_t value);` — as
    /// many label values as the definition named label names.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// `..._http_filter_increment_gauge`: as `increment_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_increment_gauge(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// `..._http_filter_decrement_gauge`: as `increment_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_decrement_gauge(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// `..._http_filter_set_gauge`: as `increment_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// `..._http_filter_record_histogram_value`: as `increment_counter`.
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// `envoy_dynamic_module_type_metrics_result
    /// envoy_dynamic_module_callback_http_filter_config_increment_counter(filter_config_envoy_ptr,
    /// size_t id, module_buffer* label_values, size_t label_values_length, uint64_t value);`
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        filter_config_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    // ---- HTTP callouts (the answer arrives in `on_http_filter_http_callout_done`) ----

    /// `envoy_dynamic_module_type_http_callout_init_result
    /// envoy_dynamic_module_callback_http_filter_http_callout(filter_envoy_ptr, uint64_t*
    /// callout_id_out, module_buffer cluster_name, module_http_header* headers, size_t
    /// headers_size, module_buffer body, uint64_t timeout_milliseconds);` — headers must hold
    /// `:method`, `:path` and `host`.
    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter_envoy_ptr: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;

    /// `envoy_dynamic_module_type_http_callout_init_result
    /// envoy_dynamic_module_callback_http_filter_start_http_stream(filter_envoy_ptr, uint64_t*
    /// stream_id_out, module_buffer cluster_name, module_http_header* headers, size_t
    /// headers_size, module_buffer body, bool end_stream, uint64_t timeout_milliseconds);` — a
    /// streamed callout: its answer comes in `on_http_filter_http_stream_headers`, `_data`,
    /// `_trailers`, then `_complete` (or `_reset`), to this stream's filter; Envoy resets it,
    /// without a callback, when the stream ends first. Headers must hold `:method`, `:path`
    /// and `:authority`. (Arguments checked against the 1.40 binary: the first six in
    /// registers, then `body` at 16(%rbp), `end_stream` at 32, the timeout at 40.)
    pub fn envoy_dynamic_module_callback_http_filter_start_http_stream(
        filter_envoy_ptr: EnvoyPtr,
        stream_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        end_stream: bool,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;

    // ---- Schedulers (no timers for HTTP filters: an event is committed from any thread and
    // runs in `on_http_filter_scheduled` on the stream's worker) ----

    /// `envoy_dynamic_module_type_http_filter_scheduler_module_ptr
    /// envoy_dynamic_module_callback_http_filter_scheduler_new(filter_envoy_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter_envoy_ptr: EnvoyPtr,
    ) -> SchedulerPtr;

    /// `void envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler_module_ptr,
    /// uint64_t event_id);`
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler_module_ptr: SchedulerPtr,
        event_id: u64,
    );

    /// `void envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler_module_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(
        scheduler_module_ptr: SchedulerPtr,
    );

    // ---- Workers ----

    /// `uint32_t envoy_dynamic_module_callback_http_filter_get_worker_index(filter_envoy_ptr);`
    pub fn envoy_dynamic_module_callback_http_filter_get_worker_index(
        filter_envoy_ptr: EnvoyPtr,
    ) -> u32;
}

/// The address of every callback declared above. Taking an address makes the callback an
/// import of the shared object even before anything calls it, so the ABI guard test (which
/// reads the imports with `nm`) checks every declaration against the Envoy binary, and the
/// dynamic loader resolves every one of them when Envoy loads the module. `program_init` reads
/// this table (through `black_box`) so the linker keeps it.
pub struct Imports([*const (); 34]);

// SAFETY: the table holds function addresses that are never called or dereferenced through
// it; sharing them between threads shares nothing mutable.
unsafe impl Sync for Imports {}

pub static IMPORTS: Imports = Imports([
    envoy_dynamic_module_callback_log as *const (),
    envoy_dynamic_module_callback_log_enabled as *const (),
    envoy_dynamic_module_callback_http_get_header as *const (),
    envoy_dynamic_module_callback_http_get_header_values as *const (),
    envoy_dynamic_module_callback_http_get_headers_size as *const (),
    envoy_dynamic_module_callback_http_get_headers as *const (),
    envoy_dynamic_module_callback_http_set_header as *const (),
    envoy_dynamic_module_callback_http_add_header as *const (),
    envoy_dynamic_module_callback_http_send_response as *const (),
    envoy_dynamic_module_callback_http_get_body_size as *const (),
    envoy_dynamic_module_callback_http_get_body_chunks_size as *const (),
    envoy_dynamic_module_callback_http_get_body_chunks as *const (),
    envoy_dynamic_module_callback_http_append_body as *const (),
    envoy_dynamic_module_callback_http_drain_body as *const (),
    envoy_dynamic_module_callback_http_filter_continue_decoding as *const (),
    envoy_dynamic_module_callback_http_filter_continue_encoding as *const (),
    envoy_dynamic_module_callback_http_clear_route_cache as *const (),
    envoy_dynamic_module_callback_http_filter_get_attribute_string as *const (),
    envoy_dynamic_module_callback_http_filter_get_attribute_int as *const (),
    envoy_dynamic_module_callback_http_filter_config_define_counter as *const (),
    envoy_dynamic_module_callback_http_filter_config_define_gauge as *const (),
    envoy_dynamic_module_callback_http_filter_config_define_histogram as *const (),
    envoy_dynamic_module_callback_http_filter_increment_counter as *const (),
    envoy_dynamic_module_callback_http_filter_increment_gauge as *const (),
    envoy_dynamic_module_callback_http_filter_decrement_gauge as *const (),
    envoy_dynamic_module_callback_http_filter_set_gauge as *const (),
    envoy_dynamic_module_callback_http_filter_record_histogram_value as *const (),
    envoy_dynamic_module_callback_http_filter_config_increment_counter as *const (),
    envoy_dynamic_module_callback_http_filter_http_callout as *const (),
    envoy_dynamic_module_callback_http_filter_start_http_stream as *const (),
    envoy_dynamic_module_callback_http_filter_scheduler_new as *const (),
    envoy_dynamic_module_callback_http_filter_scheduler_commit as *const (),
    envoy_dynamic_module_callback_http_filter_scheduler_delete as *const (),
    envoy_dynamic_module_callback_http_filter_get_worker_index as *const (),
]);

// ------------------------------------------------------------------------------------------
// Safe wrappers: what the rest of the crate calls.
// ------------------------------------------------------------------------------------------

/// Copies an Envoy-owned buffer. A null pointer (Envoy's "nothing") is empty.
///
/// # Safety
/// `buffer.ptr` is null or points to `buffer.length` readable bytes for the duration of the
/// call (Envoy's buffers are valid until the end of the hook that received or read them).
unsafe fn envoy_bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, and the caller guarantees `length` readable bytes behind it.
    unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }.to_vec()
}

/// Whether Envoy's `dynamic_modules` logger shows `level` now.
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: takes a plain enum value; callable from any thread.
    unsafe { envoy_dynamic_module_callback_log_enabled(level) }
}

/// Logs `message` through Envoy's `dynamic_modules` logger, if that level is enabled.
pub fn log(level: LogLevel, message: &str) {
    if !log_enabled(level) {
        return;
    }
    // SAFETY: the buffer points into `message`, alive for the whole call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) };
}

/// One HTTP stream as Envoy passed it to a hook (`filter_envoy_ptr`). Only `hooks` makes one,
/// from the pointer Envoy passed; the rest of the crate cannot. Envoy's pointer is valid until
/// the stream's filter is destroyed (`on_http_filter_destroy`), so a copy may be kept that
/// long, and used on the stream's worker thread only: the worker's registry of streams
/// (`worker.rs`) keeps one from `filter_new` and drops it in `filter_destroy`. Every byte
/// Envoy hands out is copied before the call returns (its buffers last only until the hook
/// returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    ptr: EnvoyPtr,
}

impl Stream {
    /// The stream of the hook Envoy is running (`hooks` only).
    fn for_hook(ptr: EnvoyPtr) -> Self {
        Self { ptr }
    }

    /// The first value of header `name` of `map`, if present.
    pub fn header(&self, map: HeaderType, name: &str) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::NULL;
        let mut count = 0usize;
        // SAFETY: `self.ptr` is the filter pointer of the running hook; the key points into
        // `name`, and `value` and `count` are live locals Envoy writes to.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut value,
                0,
                &mut count,
            )
        };
        if !found || count == 0 {
            return None;
        }
        // SAFETY: Envoy filled `value` with a buffer valid until the end of this hook.
        Some(unsafe { envoy_bytes(value) })
    }

    /// Sets header `name` of `map` to `value` (replacing every value), or removes it (`None`).
    pub fn set_header(&self, map: HeaderType, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::of);
        // SAFETY: `self.ptr` is the running hook's filter pointer; both buffers point into
        // borrowed slices alive for the call, or `value` is null (remove).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                map,
                ModuleBuffer::of(name.as_bytes()),
                value,
            )
        }
    }

    /// Answers the request itself: `status`, `headers`, `body`; `details` shows as the
    /// response code details (`%RESPONSE_CODE_DETAILS%`).
    pub fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &[u8])],
        body: &[u8],
        details: &str,
    ) {
        let mut headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(name, value)| ModuleHttpHeader::of(name.as_bytes(), value))
            .collect();
        // SAFETY: `self.ptr` is the running hook's filter pointer; the header array and every
        // buffer point into data borrowed for the whole call (Envoy copies them).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                status,
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            )
        };
    }

    /// A string attribute (`source.address`, `request.id`, ...), if Envoy has it.
    pub fn attribute_string(&self, id: AttributeId) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::NULL;
        // SAFETY: `self.ptr` is the running hook's filter pointer; `value` is a live local.
        let found = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self.ptr, id, &mut value)
        };
        // SAFETY: when found, Envoy filled `value` with a buffer valid during this hook.
        found.then(|| unsafe { envoy_bytes(value) })
    }

    /// An integer attribute (`source.port`, ...), if Envoy has it.
    pub fn attribute_int(&self, id: AttributeId) -> Option<u64> {
        let mut value = 0u64;
        // SAFETY: `self.ptr` is the running hook's filter pointer; `value` is a live local.
        let found = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(self.ptr, id, &mut value)
        };
        found.then_some(value)
    }

    /// The index of the worker thread running this stream.
    pub fn worker_index(&self) -> u32 {
        // SAFETY: `self.ptr` is the running hook's filter pointer.
        unsafe { envoy_dynamic_module_callback_http_filter_get_worker_index(self.ptr) }
    }

    /// Every header of `map`, in order, a name once per value; `None` when Envoy does not have
    /// that map (yet, or any more).
    pub fn headers(&self, map: HeaderType) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        // SAFETY: `self.ptr` is a live filter pointer (the type's contract).
        let count = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, map) };
        let empty = EnvoyHttpHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        // At least one element, so the pointer Envoy gets is never dangling.
        let mut headers = vec![empty; count.max(1)];
        // SAFETY: Envoy writes `count` headers (what it just reported for this map, on this
        // thread, with no call in between) into an array that holds at least that many.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.ptr, map, headers.as_mut_ptr())
        };
        if !found {
            return None;
        }
        headers.truncate(count);
        Some(
            headers
                .into_iter()
                .map(|header| {
                    let name = EnvoyBuffer {
                        ptr: header.key_ptr,
                        length: header.key_length,
                    };
                    let value = EnvoyBuffer {
                        ptr: header.value_ptr,
                        length: header.value_length,
                    };
                    // SAFETY: Envoy filled both buffers with its header map's storage, valid
                    // until the map changes; they are copied here, before any other call.
                    let name = unsafe { envoy_bytes(name) };
                    // SAFETY: as above.
                    let value = unsafe { envoy_bytes(value) };
                    (name, value)
                })
                .collect(),
        )
    }

    /// Adds a value to header `name` of `map` (beside any it has).
    pub fn add_header(&self, map: HeaderType, name: &str, value: &[u8]) -> bool {
        // SAFETY: a live filter pointer; both buffers borrow slices alive for the call.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.ptr,
                map,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// The size of a body buffer: the chunk a body hook received, or what Envoy buffered for
    /// this filter; 0 when there is no such buffer.
    pub fn body_size(&self, body: BodyType) -> usize {
        // SAFETY: a live filter pointer and a plain enum value.
        unsafe { envoy_dynamic_module_callback_http_get_body_size(self.ptr, body) }
    }

    /// The bytes of a body buffer, `None` when there is no such buffer (no chunk outside a
    /// body hook, nothing buffered).
    pub fn body(&self, body: BodyType) -> Option<Vec<u8>> {
        // SAFETY: a live filter pointer and a plain enum value.
        let count =
            unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body) };
        let mut chunks = vec![EnvoyBuffer::NULL; count.max(1)];
        // SAFETY: Envoy writes as many slices as it just reported (same buffer, same thread,
        // no call in between) into an array that holds at least that many.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.ptr, body, chunks.as_mut_ptr())
        };
        if !found {
            return None;
        }
        chunks.truncate(count);
        let mut bytes = Vec::with_capacity(chunks.iter().map(|c| c.length).sum());
        for chunk in chunks {
            // SAFETY: each slice points into Envoy's buffer, unchanged until the next call
            // that modifies it; copied at once.
            bytes.extend_from_slice(&unsafe { envoy_bytes(chunk) });
        }
        Some(bytes)
    }

    /// Drops the first `bytes` bytes of a body buffer; `false` when there is no such buffer.
    pub fn drain_body(&self, body: BodyType, bytes: usize) -> bool {
        // SAFETY: a live filter pointer and plain values.
        unsafe { envoy_dynamic_module_callback_http_drain_body(self.ptr, body, bytes) }
    }

    /// Appends `data` to a body buffer (the buffered body is created when missing); `false`
    /// when there is no such buffer (a received chunk outside its hook).
    pub fn append_body(&self, body: BodyType, data: &[u8]) -> bool {
        // SAFETY: a live filter pointer; the buffer borrows `data` for the call (Envoy copies).
        unsafe {
            envoy_dynamic_module_callback_http_append_body(self.ptr, body, ModuleBuffer::of(data))
        }
    }

    /// Lets a request stopped in its request hooks go on. May run other filters' hooks, and
    /// this module's hooks of this stream (a local reply on the way): call it with nothing of
    /// the stream borrowed.
    pub fn continue_decoding(&self) {
        // SAFETY: a live filter pointer.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.ptr) }
    }

    /// Starts a streamed callout to `cluster` sending `headers` and `body` (the request ends
    /// with them); its id, which the answer's hooks carry.
    pub fn start_http_stream(
        &self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutInitResult> {
        let mut headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(name, value)| ModuleHttpHeader::of(name.as_bytes(), value))
            .collect();
        let mut id = 0u64;
        // SAFETY: a live filter pointer; the cluster name, the header array and the body
        // borrow data alive for the call (Envoy copies them); `id` is a live local.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_start_http_stream(
                self.ptr,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                true,
                timeout_ms,
            )
        };
        if result == CalloutInitResult::SUCCESS {
            Ok(id)
        } else {
            Err(result)
        }
    }

    /// A scheduler for this stream (`Scheduler`); `None` if Envoy gives none.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: a live filter pointer; Envoy allocates the scheduler, `Scheduler` deletes it.
        let ptr = unsafe { envoy_dynamic_module_callback_http_filter_scheduler_new(self.ptr) };
        (!ptr.is_null()).then_some(Scheduler { ptr })
    }

    /// Makes Envoy choose the route again (a request header changed). Request path only.
    pub fn clear_route_cache(&self) {
        // SAFETY: a live filter pointer.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    /// Records into metric `id` (defined on this stream's configuration, `ConfigHandle`) with
    /// one value per label its definition named.
    pub fn record_metric(
        &self,
        op: MetricOp,
        id: usize,
        labels: &[&[u8]],
        value: u64,
    ) -> MetricsResult {
        let mut labels: Vec<ModuleBuffer> = labels.iter().map(|l| ModuleBuffer::of(l)).collect();
        let (values, count) = if labels.is_empty() {
            (std::ptr::null_mut(), 0)
        } else {
            (labels.as_mut_ptr(), labels.len())
        };
        let call: RecordMetric = match op {
            MetricOp::IncrementCounter => {
                envoy_dynamic_module_callback_http_filter_increment_counter
            }
            MetricOp::IncrementGauge => envoy_dynamic_module_callback_http_filter_increment_gauge,
            MetricOp::DecrementGauge => envoy_dynamic_module_callback_http_filter_decrement_gauge,
            MetricOp::RecordHistogram => {
                envoy_dynamic_module_callback_http_filter_record_histogram_value
            }
        };
        // SAFETY: a live filter pointer; `values` is null with a count of 0, or points to
        // `count` buffers borrowing the caller's label values, alive for the call (Envoy copies
        // them into its symbol table).
        unsafe { call(self.ptr, id, values, count, value) }
    }
}

/// A scheduler of one stream (`Stream::scheduler`): an event committed through it runs
/// `on_http_filter_scheduled` on the stream's worker once the running hook has returned (if
/// the stream is still there). Deleted when dropped.
#[derive(Debug)]
pub struct Scheduler {
    ptr: SchedulerPtr,
}

impl Scheduler {
    pub fn commit(&self, event_id: u64) {
        // SAFETY: `self.ptr` came from `scheduler_new` and is deleted only by `drop`.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_commit(self.ptr, event_id) }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from `scheduler_new`; deleted once, here (an event committed
        // before stays queued in Envoy's dispatcher, which holds what it needs).
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_delete(self.ptr) }
    }
}

/// The stream-level metric callbacks all have this type.
type RecordMetric =
    unsafe extern "C" fn(EnvoyPtr, usize, *mut ModuleBuffer, usize, u64) -> MetricsResult;
/// The metric definition callbacks all have this type.
type DefineMetric = unsafe extern "C" fn(
    EnvoyPtr,
    ModuleBuffer,
    *mut ModuleBuffer,
    usize,
    *mut usize,
) -> MetricsResult;

/// What `Stream::record_metric` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    IncrementCounter,
    IncrementGauge,
    DecrementGauge,
    RecordHistogram,
}

/// The kind of metric `ConfigHandle::define` defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A filter configuration as Envoy passed it to `on_http_filter_config_new`
/// (`filter_config_envoy_ptr`): only `hooks` makes one, for the duration of that hook, on the
/// main thread. Metrics can be defined only then (Envoy freezes the definitions when the hook
/// returns: `Frozen`).
pub struct ConfigHandle {
    ptr: EnvoyPtr,
}

impl ConfigHandle {
    /// The configuration `config_new` is creating (`hooks` only).
    fn for_hook(ptr: EnvoyPtr) -> Self {
        Self { ptr }
    }

    /// Defines a metric with these label names (none: a plain metric); its id, for
    /// `Stream::record_metric`.
    pub fn define(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &[&str],
    ) -> Result<usize, MetricsResult> {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let (names, count) = if labels.is_empty() {
            (std::ptr::null_mut(), 0)
        } else {
            (labels.as_mut_ptr(), labels.len())
        };
        let call: DefineMetric = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: `self.ptr` is the configuration of the running `config_new`; the name and
        // the label names borrow slices alive for the call (Envoy copies them); `id` is a live
        // local Envoy writes to.
        let result = unsafe {
            call(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                names,
                count,
                &mut id,
            )
        };
        if result == MetricsResult::SUCCESS {
            Ok(id)
        } else {
            Err(result)
        }
    }
}
