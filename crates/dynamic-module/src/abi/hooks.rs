//! The event hooks this module exports: the 21 Envoy 1.40 requires of an HTTP-filter module
//! (it refuses to load a module lacking any of them, "Failed to resolve symbol"). The optional
//! ones (per-route configuration, configuration-level callouts and schedulers, local-reply
//! notification) are not exported, so Envoy does not call them.
//!
//! Each hook only turns Envoy's pointers back into this module's objects and hands over to the
//! safe `filter` code through `guard`, which catches panics. The C prototype of each hook (from
//! abi.h) is above it; the function-pointer type Envoy 1.40 resolves it with (from the binary,
//! `unsigned long` being `size_t` or `uint64_t`) matched each one.
//!
//! Ownership: `config_new` returns an `Arc<Config>` turned into a pointer, which
//! `config_destroy` takes back; each `filter_new` clones that `Arc` into its `Filter` (so a
//! configuration lives as long as its last stream, whatever order Envoy destroys them in) and
//! returns a `Box<Filter>` pointer, which `filter_destroy` takes back.

use super::{
    BodyStatus, CalloutResult, ConfigHandle, EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, HeadersStatus,
    HttpStreamResetReason, ModulePtr, Stream, TrailersStatus, ABI_VERSION, IMPORTS,
};
use crate::config::Config;
use crate::filter::Filter;
use crate::guard;
use std::ffi::c_char;
use std::mem::ManuallyDrop;
use std::sync::Arc;

// Envoy shares a configuration between its workers (each makes filters from it), which the
// pointers hide from the compiler: keep `Config` shareable.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Config>();
};

/// The `Filter` behind a module pointer `filter_new` returned.
///
/// # Safety
/// `ptr` is null or a pointer `envoy_dynamic_module_on_http_filter_new` returned whose
/// `filter_destroy` has not run yet; Envoy calls a stream's hooks (its destruction included)
/// on the worker thread that made it, so only shared references are made (the filter's state
/// is in cells), and the filter's thread-bound parts (`Rc`) never leave that thread.
unsafe fn filter<'a>(ptr: ModulePtr) -> Option<&'a Filter> {
    // SAFETY: per the contract above, non-null means a live `Box<Filter>` allocation.
    unsafe { ptr.cast::<Filter>().as_ref() }
}

/// Copies the bytes of an Envoy buffer passed to a hook.
///
/// # Safety
/// As `super::envoy_bytes`: null, or `length` bytes readable during the hook.
unsafe fn hook_bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    // SAFETY: forwarded contract.
    unsafe { super::envoy_bytes(buffer) }
}

/// Copies an array of Envoy's headers passed to a hook.
///
/// # Safety
/// `headers` is null or points to `count` headers whose buffers are valid during the hook.
unsafe fn header_array(headers: *const EnvoyHttpHeader, count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if headers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, `count` headers, per the contract.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers
        .iter()
        .map(|header| {
            let name = EnvoyBuffer {
                ptr: header.key_ptr,
                length: header.key_length,
            };
            let value = EnvoyBuffer {
                ptr: header.value_ptr,
                length: header.value_length,
            };
            // SAFETY: Envoy's header storage, valid during the hook, per the contract.
            let name = unsafe { hook_bytes(name) };
            // SAFETY: as above.
            let value = unsafe { hook_bytes(value) };
            (name, value)
        })
        .collect()
}

/// Copies the buffers of a body chunk passed to a hook, as one run of bytes.
///
/// # Safety
/// `buffers` is null or points to `count` buffers valid during the hook.
unsafe fn buffer_array(buffers: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if buffers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, `count` buffers, per the contract.
    let buffers = unsafe { std::slice::from_raw_parts(buffers, count) };
    let mut bytes = Vec::new();
    for buffer in buffers {
        // SAFETY: each points to Envoy's bytes, valid during the hook, per the contract.
        bytes.extend(unsafe { hook_bytes(*buffer) });
    }
    bytes
}

/// `envoy_dynamic_module_type_abi_version_module_ptr envoy_dynamic_module_on_program_init(void);`
/// — Envoy type `const char *(*)()`. Called once, on the main thread, when Envoy loads the
/// module; null would unload it.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard::quiet("on_program_init", std::ptr::null(), || {
        guard::install_panic_hook();
        crate::logger::install();
        // Keeps the table of imported callbacks (and so every import) in the shared object.
        std::hint::black_box(&IMPORTS);
        ABI_VERSION.as_ptr()
    })
}

/// `envoy_dynamic_module_type_http_filter_config_module_ptr
/// envoy_dynamic_module_on_http_filter_config_new(filter_config_envoy_ptr, envoy_buffer name,
/// envoy_buffer config);` — Envoy type `const void *(*)(void *, envoy_buffer, envoy_buffer)`.
/// Main thread. Null rejects the configuration.
///
/// # Safety
/// Called by Envoy only: both buffers are valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: EnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    // SAFETY: Envoy's buffers are valid for the duration of this hook.
    let name = unsafe { hook_bytes(name) };
    // SAFETY: as above.
    let config = unsafe { hook_bytes(config) };
    // Envoy's configuration object, valid during this hook (metrics are defined on it).
    let handle = ConfigHandle::for_hook(filter_config_envoy_ptr);
    guard::quiet("on_http_filter_config_new", std::ptr::null(), || {
        match Config::new(&name, &config, &handle) {
            Some(config) => Arc::into_raw(Arc::new(config)).cast(),
            // Envoy refuses the configuration ("Failed to initialize dynamic module").
            None => std::ptr::null(),
        }
    })
}

/// `void envoy_dynamic_module_on_http_filter_config_destroy(filter_config_module_ptr);` —
/// Envoy type `void (*)(const void *)`.
///
/// # Safety
/// Called by Envoy only, once, with a pointer `config_new` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: ModulePtr,
) {
    if filter_config_ptr.is_null() {
        return;
    }
    // SAFETY: `config_new` made this pointer with `Arc::into_raw`; Envoy destroys it once.
    let config = unsafe { Arc::from_raw(filter_config_ptr.cast::<Config>()) };
    guard::quiet("on_http_filter_config_destroy", (), move || drop(config));
}

/// `envoy_dynamic_module_type_http_filter_module_ptr
/// envoy_dynamic_module_on_http_filter_new(filter_config_ptr, filter_envoy_ptr);` — Envoy type
/// `const void *(*)(const void *, void *)`. Worker thread, once per stream. Null would close
/// the stream; a panic here yields a filter that answers 503 instead.
///
/// # Safety
/// Called by Envoy only, with a configuration pointer `config_new` returned and not destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    filter_config_ptr: ModulePtr,
    filter_envoy_ptr: EnvoyPtr,
) -> ModulePtr {
    if filter_config_ptr.is_null() {
        return std::ptr::null();
    }
    // SAFETY: a live `Arc<Config>` pointer from `config_new`; `ManuallyDrop` leaves the
    // configuration's own reference alone while this clones another for the stream.
    let config = ManuallyDrop::new(unsafe { Arc::from_raw(filter_config_ptr.cast::<Config>()) });
    let config = Arc::clone(&config);
    // Envoy's stream, valid until `filter_destroy` (its callbacks are set before this hook).
    let stream = Stream::for_hook(filter_envoy_ptr);
    let filter = guard::quiet("on_http_filter_new", None, || {
        Some(Filter::new(Arc::clone(&config), stream))
    });
    let filter = filter.unwrap_or_else(|| Filter::broken(config));
    Box::into_raw(Box::new(filter)).cast_const().cast()
}

/// `void envoy_dynamic_module_on_http_filter_destroy(filter_module_ptr);` — Envoy type
/// `void (*)(const void *)`.
///
/// # Safety
/// Called by Envoy only, once, with a pointer `filter_new` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_module_ptr: ModulePtr) {
    if filter_module_ptr.is_null() {
        return;
    }
    // SAFETY: `filter_new` made this pointer with `Box::into_raw`; Envoy destroys it once.
    let filter = unsafe { Box::from_raw(filter_module_ptr.cast_mut().cast::<Filter>()) };
    guard::quiet("on_http_filter_destroy", (), move || drop(filter));
}

/// `envoy_dynamic_module_type_on_http_filter_request_headers_status
/// envoy_dynamic_module_on_http_filter_request_headers(filter_envoy_ptr, filter_module_ptr,
/// bool end_of_stream);` — Envoy type `request_headers_status (*)(void *, const void *, bool)`.
///
/// # Safety
/// Called by Envoy only, with its stream pointer and a live `filter_new` pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    end_of_stream: bool,
) -> HeadersStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return HeadersStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_request_headers",
        &stream,
        filter,
        HeadersStatus::CONTINUE,
        HeadersStatus::STOP_ITERATION,
        || filter.on_request_headers(&stream, end_of_stream),
    )
}

/// `..._request_body_status envoy_dynamic_module_on_http_filter_request_body(filter_envoy_ptr,
/// filter_module_ptr, bool end_of_stream);` — Envoy type
/// `request_body_status (*)(void *, const void *, bool)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    end_of_stream: bool,
) -> BodyStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return BodyStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_request_body",
        &stream,
        filter,
        BodyStatus::CONTINUE,
        BodyStatus::STOP_ITERATION_NO_BUFFER,
        || filter.on_request_body(&stream, end_of_stream),
    )
}

/// `..._request_trailers_status envoy_dynamic_module_on_http_filter_request_trailers(
/// filter_envoy_ptr, filter_module_ptr);` — Envoy type
/// `request_trailers_status (*)(void *, const void *)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
) -> TrailersStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return TrailersStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_request_trailers",
        &stream,
        filter,
        TrailersStatus::CONTINUE,
        TrailersStatus::STOP_ITERATION,
        || filter.on_request_trailers(&stream),
    )
}

/// `..._response_headers_status envoy_dynamic_module_on_http_filter_response_headers(
/// filter_envoy_ptr, filter_module_ptr, bool end_of_stream);` — Envoy type
/// `response_headers_status (*)(void *, const void *, bool)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    end_of_stream: bool,
) -> HeadersStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return HeadersStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_response_headers",
        &stream,
        filter,
        HeadersStatus::CONTINUE,
        HeadersStatus::STOP_ITERATION,
        || filter.on_response_headers(&stream, end_of_stream),
    )
}

/// `..._response_body_status envoy_dynamic_module_on_http_filter_response_body(
/// filter_envoy_ptr, filter_module_ptr, bool end_of_stream);` — Envoy type
/// `response_body_status (*)(void *, const void *, bool)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    end_of_stream: bool,
) -> BodyStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return BodyStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_response_body",
        &stream,
        filter,
        BodyStatus::CONTINUE,
        BodyStatus::STOP_ITERATION_NO_BUFFER,
        || filter.on_response_body(&stream, end_of_stream),
    )
}

/// `..._response_trailers_status envoy_dynamic_module_on_http_filter_response_trailers(
/// filter_envoy_ptr, filter_module_ptr);` — Envoy type
/// `response_trailers_status (*)(void *, const void *)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
) -> TrailersStatus {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return TrailersStatus::CONTINUE;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_response_trailers",
        &stream,
        filter,
        TrailersStatus::CONTINUE,
        TrailersStatus::STOP_ITERATION,
        || filter.on_response_trailers(&stream),
    )
}

/// `void envoy_dynamic_module_on_http_filter_stream_complete(filter_envoy_ptr,
/// filter_module_ptr);` — Envoy type `void (*)(void *, const void *)`. Before `destroy` and
/// the access logs; nothing left to answer.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::quiet("on_http_filter_stream_complete", (), || {
        filter.on_stream_complete(&stream)
    });
}

/// `void envoy_dynamic_module_on_http_filter_http_callout_done(filter_envoy_ptr,
/// filter_module_ptr, uint64_t callout_id, envoy_dynamic_module_type_http_callout_result
/// result, envoy_http_header* headers, size_t headers_size, envoy_buffer* body_chunks, size_t
/// body_chunks_size);` — Envoy type `void (*)(void *, const void *, unsigned long,
/// http_callout_result, envoy_http_header *, unsigned long, envoy_buffer *, unsigned long)`.
/// The headers and chunks are Envoy's until the hook returns (null when the callout failed).
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    callout_id: u64,
    result: CalloutResult,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *mut EnvoyBuffer,
    _body_chunks_size: usize,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_callout_done",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_callout_done(&stream, callout_id, result),
    );
}

/// `void envoy_dynamic_module_on_http_filter_http_stream_headers(filter_envoy_ptr,
/// filter_module_ptr, uint64_t stream_id, envoy_http_header* headers, size_t headers_size,
/// bool end_stream);` — Envoy type `void (*)(void *, const void *, unsigned long,
/// envoy_http_header *, unsigned long, bool)`. The answer of a streamed callout (the
/// rate-limit service's gRPC call).
///
/// # Safety
/// As `request_headers`; `headers` holds `headers_size` headers valid during the hook.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    stream_id: u64,
    headers: *mut EnvoyHttpHeader,
    headers_size: usize,
    _end_stream: bool,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    // SAFETY: Envoy's array of `headers_size` headers, valid during this hook.
    let headers = unsafe { header_array(headers, headers_size) };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_stream_headers",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_stream_headers(stream_id, headers),
    );
}

/// `void envoy_dynamic_module_on_http_filter_http_stream_data(filter_envoy_ptr,
/// filter_module_ptr, uint64_t stream_id, const envoy_buffer* data, size_t data_count, bool
/// end_stream);` — Envoy type `void (*)(void *, const void *, unsigned long,
/// const envoy_buffer *, unsigned long, bool)`.
///
/// # Safety
/// As `request_headers`; `data` holds `data_count` buffers valid during the hook.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    stream_id: u64,
    data: *const EnvoyBuffer,
    data_count: usize,
    _end_stream: bool,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    // SAFETY: Envoy's array of `data_count` buffers, valid during this hook.
    let chunk = unsafe { buffer_array(data, data_count) };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_stream_data",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_stream_data(stream_id, &chunk),
    );
}

/// `void envoy_dynamic_module_on_http_filter_http_stream_trailers(filter_envoy_ptr,
/// filter_module_ptr, uint64_t stream_id, envoy_http_header* trailers, size_t trailers_size);`
/// — Envoy type `void (*)(void *, const void *, unsigned long, envoy_http_header *,
/// unsigned long)`.
///
/// # Safety
/// As `request_headers`; `trailers` holds `trailers_size` headers valid during the hook.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    stream_id: u64,
    trailers: *mut EnvoyHttpHeader,
    trailers_size: usize,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    // SAFETY: Envoy's array of `trailers_size` headers, valid during this hook.
    let trailers = unsafe { header_array(trailers, trailers_size) };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_stream_trailers",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_stream_trailers(stream_id, trailers),
    );
}

/// `void envoy_dynamic_module_on_http_filter_http_stream_complete(filter_envoy_ptr,
/// filter_module_ptr, uint64_t stream_id);` — Envoy type `void (*)(void *, const void *,
/// unsigned long)`. The callout ended with its whole answer.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    stream_id: u64,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_stream_complete",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_stream_end(stream_id, false),
    );
}

/// `void envoy_dynamic_module_on_http_filter_http_stream_reset(filter_envoy_ptr,
/// filter_module_ptr, uint64_t stream_id, envoy_dynamic_module_type_http_stream_reset_reason
/// reason);` — Envoy type `void (*)(void *, const void *, unsigned long,
/// http_stream_reset_reason)`. The callout ended without a whole answer (a connection
/// failure, its timeout); Envoy 1.40 passes no finer reason.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    stream_id: u64,
    _reason: HttpStreamResetReason,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering(
        "on_http_filter_http_stream_reset",
        &stream,
        filter,
        (),
        (),
        || filter.on_http_stream_end(stream_id, true),
    );
}

/// `void envoy_dynamic_module_on_http_filter_scheduled(filter_envoy_ptr, filter_module_ptr,
/// uint64_t event_id);` — Envoy type `void (*)(void *, const void *, unsigned long)`. Runs on
/// the stream's worker an event committed through `..._http_filter_scheduler_commit`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: ModulePtr,
    event_id: u64,
) {
    // SAFETY: a live `filter_new` pointer, per the contract above.
    let Some(filter) = (unsafe { filter(filter_module_ptr) }) else {
        return;
    };
    let stream = Stream::for_hook(filter_envoy_ptr);
    guard::answering("on_http_filter_scheduled", &stream, filter, (), (), || {
        filter.on_scheduled(&stream, event_id)
    });
}

/// `void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
/// filter_envoy_ptr, filter_module_ptr);` — Envoy type `void (*)(void *, const void *)`.
/// Flow control for a terminal filter; this one is not terminal.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy_ptr: EnvoyPtr,
    _filter_module_ptr: ModulePtr,
) {
    guard::quiet(
        "on_http_filter_downstream_above_write_buffer_high_watermark",
        (),
        || {},
    );
}

/// `void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
/// filter_envoy_ptr, filter_module_ptr);` — Envoy type `void (*)(void *, const void *)`.
///
/// # Safety
/// As `request_headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy_ptr: EnvoyPtr,
    _filter_module_ptr: ModulePtr,
) {
    guard::quiet(
        "on_http_filter_downstream_below_write_buffer_low_watermark",
        (),
        || {},
    );
}
