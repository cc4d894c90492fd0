"""The native module (crates/dynamic-module, an Envoy dynamic module): the ABI guard and a real
Envoy loading it.

The module talks to Envoy through C declarations written by hand; Envoy only warns when the ABI
version differs, so a wrong declaration would be undefined behaviour, not a load error. The
guard reads the built object and the test Envoy binary with `nm`: every callback the module
imports must be one the binary exports, and the module must export every hook Envoy 1.40
requires. Then a real Envoy loads `libtollgate.so` (found through
ENVOY_DYNAMIC_MODULES_SEARCH_PATH, as a deployment would) in front of the backend: requests no
operation matches pass through untouched (`unmatched: pass`), the ABI version matches, what the
module reads through the ABI is right, a panic in a hook is answered 503 while Envoy carries on,
and a configuration tollgate refuses makes Envoy refuse it.

tollgate's behaviour on this host is tested by the behaviour tests themselves, run with
TOLLGATE_HOST=native (the Makefile's `integration` target; docs/development.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import stack  # noqa: E402
from http_helpers import header_values, seen  # noqa: E402

MODULE_DIR = stack.REPO / "target" / "native"
MODULE = MODULE_DIR / "libtollgate.so"
CALLBACK_PREFIX = "envoy_dynamic_module_callback_"

# The hooks Envoy 1.40 requires of an HTTP-filter module, by their names in the ABI header
# (source/extensions/dynamic_modules/abi/abi.h): it refuses a module lacking any of them.
REQUIRED_HOOKS = [
    "envoy_dynamic_module_on_program_init",
    "envoy_dynamic_module_on_http_filter_config_new",
    "envoy_dynamic_module_on_http_filter_config_destroy",
    "envoy_dynamic_module_on_http_filter_new",
    "envoy_dynamic_module_on_http_filter_destroy",
    "envoy_dynamic_module_on_http_filter_request_headers",
    "envoy_dynamic_module_on_http_filter_request_body",
    "envoy_dynamic_module_on_http_filter_request_trailers",
    "envoy_dynamic_module_on_http_filter_response_headers",
    "envoy_dynamic_module_on_http_filter_response_body",
    "envoy_dynamic_module_on_http_filter_response_trailers",
    "envoy_dynamic_module_on_http_filter_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_callout_done",
    "envoy_dynamic_module_on_http_filter_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_http_stream_data",
    "envoy_dynamic_module_on_http_filter_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_scheduled",
    "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
    "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
]

# A NUL-terminated "vX.Y.Z": how an ABI version string sits in either binary.
VERSION = re.compile(rb"\x00(v\d+\.\d+\.\d+)\x00")
PANIC_PATH = "/boom"
# A tollgate configuration under which every request below passes through untouched.
FILTER_CONFIG = json.dumps({
    "operations": [{"name": "health", "methods": ["GET"], "path": "/ping", "auth": "none"}],
    "unmatched": "pass",
})


def built_module() -> Path:
    if not MODULE.exists():
        pytest.fail(f"{MODULE} is missing: `make build` builds it (target native-module)")
    return MODULE


def dynamic_symbols(path: Path, which: str) -> set[str]:
    """Names in the dynamic symbol table (`which`: --defined-only or --undefined-only),
    without symbol versions."""
    result = subprocess.run(["nm", "-D", which, str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"nm {which} {path}: {result.stderr}"
    return {line.split()[-1].split("@")[0] for line in result.stdout.splitlines() if line.split()}


@pytest.fixture(scope="module")
def envoy_exports() -> set[str]:
    return dynamic_symbols(Path(stack.envoy_binary()), "--defined-only")


@pytest.fixture(scope="module")
def envoy_bytes() -> bytes:
    return Path(stack.envoy_binary()).read_bytes()


# --- the ABI guard --------------------------------------------------------------------------


def test_every_callback_the_module_imports_is_exported_by_envoy(envoy_exports):
    imported = {name for name in dynamic_symbols(built_module(), "--undefined-only")
                if name.startswith(CALLBACK_PREFIX)}
    # The module keeps every declared callback as an import (abi::IMPORTS), so this checks
    # every declaration, not only the ones called today.
    assert len(imported) >= 30, f"the module imports only {sorted(imported)}"
    missing = sorted(imported - envoy_exports)
    assert not missing, (
        f"{MODULE.name} imports callbacks that {stack.envoy_binary()} does not export "
        f"(a stale or misspelt declaration in crates/dynamic-module/src/abi/mod.rs): {missing}")


def test_the_module_exports_every_hook_envoy_requires():
    exported = dynamic_symbols(built_module(), "--defined-only")
    missing = [hook for hook in REQUIRED_HOOKS if hook not in exported]
    assert not missing, (
        f"{MODULE.name} does not export hooks Envoy requires (it would refuse to load it, "
        f"'Failed to resolve symbol'): {missing}")


def test_the_module_can_unwind_a_panic():
    """Built with `panic = "abort"` (the workspace's release profile), a panic cannot unwind to
    the hook's `catch_unwind` and takes Envoy down; such a build cannot start an unwind, so it
    does not import the unwinder's entry point."""
    imported = dynamic_symbols(built_module(), "--undefined-only")
    assert "_Unwind_RaiseException" in imported, (
        f"{MODULE.name} was built with panic = \"abort\": build it with `make native-module` "
        "(Cargo profile `native`, which unwinds)")


def test_envoy_resolves_the_required_hooks_by_these_names(envoy_bytes):
    """The list above is this Envoy's: it looks each name up in the module."""
    unknown = [hook for hook in REQUIRED_HOOKS if hook.encode() + b"\x00" not in envoy_bytes]
    assert not unknown, f"this Envoy does not look these hooks up (renamed?): {unknown}"


def test_the_module_abi_version_is_one_this_envoy_knows(envoy_bytes):
    """The version `program_init` returns, read from the object (the module cannot be loaded
    outside Envoy: it binds Envoy's callbacks at load). The Envoy binary holds the version it
    expects as a plain string too, among a few other "vX.Y.Z"; the load test below reads
    Envoy's own verdict ("ABI version ... matched") from its log."""
    module_versions = set(VERSION.findall(built_module().read_bytes()))
    assert len(module_versions) == 1, f"{MODULE.name} holds versions {module_versions}"
    envoy_versions = set(VERSION.findall(envoy_bytes))
    assert module_versions <= envoy_versions, (
        f"{MODULE.name} returns ABI version {module_versions.pop().decode()}; "
        f"this Envoy's binary holds {sorted(v.decode() for v in envoy_versions)}")


# --- a real Envoy loading it -----------------------------------------------------------------


def native_envoy_config(listen_port: int, admin_port: int, backend_port: int,
                        filter_config: str = FILTER_CONFIG) -> dict:
    """Listener -> the dynamic module filter (`libtollgate.so` by name) -> router -> backend."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                 "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1",
                                               "port_value": listen_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "use_remote_address": True,
                        "route_config": {"name": "backend", "virtual_hosts": [{
                            "name": "backend", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "route": {"cluster": "backend", "timeout": "30s"}}],
                        }]},
                        "http_filters": [
                            {"name": "tollgate",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                          "dynamic_modules.v3.DynamicModuleFilter",
                                 "dynamic_module_config": {"name": "tollgate"},
                                 "filter_name": "tollgate",
                                 "filter_config": {
                                     "@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": filter_config},
                             }},
                            {"name": "envoy.filters.http.router",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                          "router.v3.Router"}},
                        ],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "backend",
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": backend_port}}},
                }]}]},
            }],
        },
    }


def start_native(workdir: Path, backend, name: str, switches: dict[str, str]) -> stack.Envoy:
    built_module()
    config = native_envoy_config(stack.free_port(), stack.free_port(), backend.port)
    return stack.Envoy(
        workdir, config, name=name, concurrency=2,
        env={"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(MODULE_DIR), **switches},
        component_log_level="dynamic_modules:info",
    )


@pytest.fixture(scope="module")
def native(workdir, backend):
    """The module as a deployment would run it: no test switch."""
    envoy = start_native(workdir, backend, "native-module", {})
    yield envoy
    envoy.stop()


@pytest.fixture(scope="module")
def native_switched(workdir, backend):
    """The module with its test-only switches: a panic on PANIC_PATH, attributes echoed."""
    envoy = start_native(workdir, backend, "native-module-switched", {
        "TOLLGATE_TEST_PANIC_PATH": PANIC_PATH,
        "TOLLGATE_TEST_ECHO_ATTRIBUTES": "1",
    })
    yield envoy
    envoy.stop()


def assert_abi_matched(envoy: stack.Envoy):
    log = envoy.log()
    assert "Dynamic module ABI version v0.2.0 matched." in log, log
    # Envoy's only ABI complaint, whatever the mismatch: "ABI version ... is deprecated".
    assert "is deprecated" not in log, log
    assert 'tollgate: native module configured (filter "tollgate": 1 operations' in log, log


def test_envoy_loads_the_module_and_the_abi_version_matches(native):
    assert requests.get(f"{native.admin}/ready", timeout=5).text.strip() == "LIVE"
    assert_abi_matched(native)
    assert "panicked" not in native.log()
    assert "test-only" not in native.log()


def test_a_request_passes_through_untouched(native):
    response = requests.get(f"{native.url}/healthz?b=2&a=1",
                            headers={"x-custom": "one", "x-other": "two"}, timeout=10)
    received = seen(response)
    assert received["method"] == "GET"
    assert received["path"] == "/healthz"
    assert received["query"] == "b=2&a=1"
    assert header_values(received, "x-custom") == ["one"]
    assert header_values(received, "x-other") == ["two"]
    # The backend's own header comes back; the module adds none (the switches are off).
    assert response.headers["x-backend"] == "fastapi"
    assert not [name for name in response.headers if name.lower().startswith("x-tollgate")]


def test_a_request_body_passes_through_untouched(native):
    body = b'{"invoice": "not really"}' + b"x" * 100_000
    response = requests.post(f"{native.url}/api/v1/validate", data=body, timeout=10,
                             headers={"content-type": "application/json"})
    received = seen(response)
    assert received["method"] == "POST"
    assert received["body_bytes"] == len(body)


def test_the_module_reads_the_right_attributes_through_the_abi(native_switched):
    """Attribute ids are positions in a C enum; a wrong one reads another attribute (or none).
    The test switch echoes what the module read."""
    response = requests.get(f"{native_switched.url}/healthz", timeout=10)
    received = seen(response)
    address = response.headers["x-tollgate-test-source-address"]
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1" and port.isdigit(), address
    assert response.headers["x-tollgate-test-source-port"] == port
    # request.id is the x-request-id Envoy made and sent upstream.
    assert header_values(received, "x-request-id") == [
        response.headers["x-tollgate-test-request-id"]]
    assert response.headers["x-tollgate-test-worker"] in ("0", "1")
    # The configuration bytes (config_new's third argument, not the filter name).
    assert response.headers["x-tollgate-test-config-bytes"] == str(len(FILTER_CONFIG))


def test_a_panic_is_answered_503_and_envoy_keeps_serving(native_switched):
    before = requests.get(f"{native_switched.url}/healthz", timeout=10)
    assert before.status_code == 200
    for method in ("GET", "POST", "GET"):
        response = requests.request(method, f"{native_switched.url}{PANIC_PATH}?q=1",
                                    data=b"body" if method == "POST" else None, timeout=10)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"statusCode": 503, "message": "Service unavailable."}
        # The module's own answer: the backend was not reached (its marker header is absent).
        assert "x-backend" not in response.headers
    after = requests.get(f"{native_switched.url}/healthz", timeout=10)
    assert after.status_code == 200, after.text
    assert requests.get(f"{native_switched.admin}/ready", timeout=5).text.strip() == "LIVE"
    assert native_switched.process.poll() is None, "Envoy exited"
    log = native_switched.log()
    assert_abi_matched(native_switched)
    assert log.count("tollgate native module panicked") == 3, log
    assert log.count("a panic in on_http_filter_request_headers was caught") == 3, log
    assert "test-only TOLLGATE_TEST_PANIC_PATH is set" in log


def test_a_configuration_tollgate_refuses_is_refused_by_envoy(workdir):
    """As the wasm filter's `on_configure`: Envoy does not start with a configuration tollgate
    cannot load (`envoy --mode validate` creates the filter configuration too)."""
    built_module()
    bad = json.dumps({"operations": [{"name": "x", "path": "/x", "auth": "sometimes"}]})
    config = native_envoy_config(stack.free_port(), stack.free_port(), stack.free_port(), bad)
    path = workdir / "native-module-bad.yaml"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [stack.envoy_binary(), "--mode", "validate", "-c", str(path),
         "--base-id", str(stack.unique_base_id()), "-l", "warn",
         "--component-log-level", "dynamic_modules:info"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(MODULE_DIR)})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "tollgate: invalid configuration" in output, output
    assert "Failed to initialize dynamic module" in output, output
    good = native_envoy_config(stack.free_port(), stack.free_port(), stack.free_port())
    path.write_text(json.dumps(good))
    result = subprocess.run(
        [stack.envoy_binary(), "--mode", "validate", "-c", str(path),
         "--base-id", str(stack.unique_base_id()), "-l", "warn"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(MODULE_DIR)})
    assert result.returncode == 0, result.stdout + result.stderr
