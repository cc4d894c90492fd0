"""What every shipped Envoy configuration does at the edge, beside tollgate: it takes the caller's
address from the connection (not from a header the caller writes), serves HTTPS only, and
retries what is safe to send twice — idempotent methods, never a POST.

The configurations are read as shipped (envoy/*.yaml, the AKS sidecar's ConfigMap), then run:
the reference's routes and backend cluster in a real Envoy in front of an upstream that fails
on purpose, and the sidecar's bootstrap serving the certificate of a Kubernetes-like Secret
directory, renewed while it runs. `make run`'s generated configurations are checked in
test_demo.py, Istio's routes in test_deployments.py."""

from __future__ import annotations

import collections
import copy
import http.server
import json
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest
import requests
import yaml

import stack
from conftest import Keys, plugin_config
from shipped import (IDEMPOTENT_METHODS, OTHER_METHODS, REPO, clusters, configmap_files,
                     connection_manager, envoy_bootstraps, manifests, public_listeners,
                     public_routes, seconds, with_local_module, with_test_certificate)

BOOTSTRAPS = envoy_bootstraps()
IDS = [where for where, _ in BOOTSTRAPS]
KEY = "Ocp-Apim-Subscription-Key"


def reference() -> dict:
    return yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())


# --- As shipped ---------------------------------------------------------------------------

@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=IDS)
def test_every_shipped_envoy_takes_the_caller_from_the_connection(where, bootstrap):
    """use_remote_address: the downstream address (what tollgate's ip_filter reads) is the TCP
    peer; with Envoy's default it would be the last X-Forwarded-For entry, which any caller
    writes. No shipped listener has a proxy in front that appends to X-Forwarded-For (the
    sidecar's Service is a layer-4 load balancer), so none trusts a hop."""
    listeners = public_listeners(bootstrap)
    assert listeners, where
    for listener in listeners:
        hcm = connection_manager(listener)
        assert hcm.get("use_remote_address") is True, where
        assert hcm.get("xff_num_trusted_hops") == 0, where


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=IDS)
def test_every_shipped_public_listener_serves_https_only(where, bootstrap):
    for listener in public_listeners(bootstrap):
        chains = listener["filter_chains"]
        assert all("transport_socket" in chain for chain in chains), f"{where}: a plain chain"
        context = stack.downstream_tls(listener)
        assert context["@type"].endswith(
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"), where
        common = context["common_tls_context"]
        assert common["tls_params"]["tls_minimum_protocol_version"] in ("TLSv1_2", "TLSv1_3")
        # Not HTTP/2: its RST_STREAM after tollgate's early answers trips some clients up.
        assert common["alpn_protocols"] == ["http/1.1"], where
        assert ("tls_certificates" in common) != ("tls_certificate_sds_secret_configs" in common)


def test_the_reference_retries_idempotent_methods_only():
    """The policy itself, on the reference; every other shipped config carries the same routes
    (next test)."""
    retrying, rest = public_routes(reference())
    (method,) = retrying["match"]["headers"]
    assert method["name"] == ":method"
    methods = method["string_match"]["safe_regex"]["regex"]
    # safe_regex is a full match (RE2): exactly the idempotent methods, no POST, no PATCH.
    assert {m for m in IDEMPOTENT_METHODS + OTHER_METHODS + ("GETX", "XGET")
            if re.fullmatch(methods, m)} == set(IDEMPOTENT_METHODS)
    policy = retrying["route"]["retry_policy"]
    assert set(policy["retry_on"].split(",")) == {"connect-failure", "reset",
                                                  "retriable-status-codes"}
    assert policy["retriable_status_codes"] == [503]
    assert policy["num_retries"] == 2
    # Three tries fit in the route's timeout (Power Platform's 120 s).
    assert 3 * seconds(policy["per_try_timeout"]) <= seconds(retrying["route"]["timeout"]) <= 120
    # The policy is safe on its own too: it names the same methods.
    assert policy["retriable_request_headers"] == [method]
    # Everything else: the same backend, no retries, and no per-try timeout cutting a slow POST.
    assert rest["match"] == {"prefix": "/"}
    assert "retry_policy" not in rest["route"]
    assert rest["route"] == {"cluster": retrying["route"]["cluster"],
                             "timeout": retrying["route"]["timeout"]}
    # Retries bounded as a share of the requests in flight.
    (threshold,) = clusters(reference())["backend"]["circuit_breakers"]["thresholds"]
    budget = threshold["retry_budget"]
    assert 0 < budget["budget_percent"]["value"] <= 20
    assert budget["min_retry_concurrency"] >= 1


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=IDS)
def test_every_shipped_route_and_backend_retry_as_the_reference(where, bootstrap):
    assert public_routes(bootstrap) == public_routes(reference()), where
    (retrying_route, _) = public_routes(bootstrap)
    backend = clusters(bootstrap)[retrying_route["route"]["cluster"]]
    assert backend["circuit_breakers"] == clusters(reference())["backend"]["circuit_breakers"], \
        where


UVICORN_KEEP_ALIVE_S = 5  # uvicorn's default --timeout-keep-alive


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=IDS)
def test_every_shipped_envoy_drops_idle_backend_connections_before_uvicorn_does(where,
                                                                               bootstrap):
    """A request sent on a keep-alive connection the backend is closing is reset: a 503 that
    a POST is not retried from. Envoy must let go of an idle connection first."""
    (retrying_route, _) = public_routes(bootstrap)
    backend = clusters(bootstrap)[retrying_route["route"]["cluster"]]
    options = backend["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    idle = seconds(options["common_http_protocol_options"]["idle_timeout"])
    assert 0 < idle < UVICORN_KEEP_ALIVE_S, where


def test_an_idle_backend_connection_is_closed_by_envoy_first(gateway):
    """In the reference Envoy before the real uvicorn: after a request, Envoy's own idle timer
    closes the backend connection, before uvicorn's keep-alive would."""
    def idle_closes() -> int:
        stats = requests.get(f"{gateway.admin}/stats?filter=^cluster.backend.upstream_cx_idle_timeout$",
                             timeout=5).text
        return int(stats.split(":")[1]) if ":" in stats else 0

    before = idle_closes()
    assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    deadline = time.monotonic() + UVICORN_KEEP_ALIVE_S
    while time.monotonic() < deadline and idle_closes() == before:
        time.sleep(0.2)
    assert idle_closes() > before, "no idle close by Envoy within uvicorn's keep-alive"


# --- Retries, in a real Envoy with the reference's routes and backend cluster ---------------

class FlakyUpstream:
    """An upstream that fails the first N calls to each path `/.../<fault>/<N>/<id>`: fault
    `503` answers 503, `reset` closes the connection without answering. It counts the calls
    each path got, so a test sees how often Envoy sent a request."""

    def __init__(self):
        self.calls: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with lock:
                    upstream.calls[self.path] += 1
                    call = upstream.calls[self.path]
                *_, fault, failures, _ = self.path.split("/")
                if call <= int(failures):
                    if fault == "reset":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"call": call}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def flaky():
    upstream = FlakyUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def retrying_gateway(workdir, flaky):
    """The reference envoy/envoy.yaml (its routes, retry policy and backend cluster as shipped)
    in front of the flaky upstream. tollgate forwards unknown paths untouched; /counted/ is an
    operation with a rate limit, to see what a retry costs the caller."""
    plugin = plugin_config(unmatched="pass")
    plugin["operations"].append({"name": "counted", "path_prefix": "/counted",
                                 "auth": "subscription_key"})
    config = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                       admin_port=stack.free_port(), backend_port=flaky.port)
    assert public_routes(config) == public_routes(reference())
    envoy = stack.Envoy(workdir, config, name="retries")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def path(fault: str, failures: int, prefix: str = "/flaky") -> str:
    return f"{prefix}/{fault}/{failures}/{uuid.uuid4().hex}"


@pytest.mark.parametrize("method", IDEMPOTENT_METHODS)
@pytest.mark.parametrize("fault", ["503", "reset"])
def test_an_idempotent_request_is_retried_and_succeeds(retrying_gateway, flaky, method, fault):
    target = path(fault, 1)
    response = requests.request(method, retrying_gateway.url + target, data=b"{}" if method in (
        "PUT", "DELETE") else None, timeout=10)
    assert response.status_code == 200
    assert flaky.calls[target] == 2


@pytest.mark.parametrize("method", ("POST", "PATCH"))
@pytest.mark.parametrize("fault", ["503", "reset"])
def test_a_post_is_never_retried(retrying_gateway, flaky, method, fault):
    target = path(fault, 1)
    response = requests.request(method, retrying_gateway.url + target, data=b"{}", timeout=10)
    # The upstream's 503, or Envoy's own 503 for the reset: either way the caller decides.
    assert response.status_code == 503
    assert flaky.calls[target] == 1


def test_at_most_two_retries_and_a_caller_cannot_ask_for_more(retrying_gateway, flaky):
    # Envoy honours x-envoy-retry-on / x-envoy-max-retries from internal callers only; with
    # use_remote_address and no internal_address_config no caller is internal.
    asks = {"x-envoy-retry-on": "5xx,reset", "x-envoy-max-retries": "10"}
    for headers in ({}, asks):
        target = path("503", 5)
        assert requests.get(retrying_gateway.url + target, headers=headers,
                            timeout=10).status_code == 503
        assert flaky.calls[target] == 3, headers
    target = path("503", 1)
    assert requests.post(retrying_gateway.url + target, headers=asks, timeout=10).status_code == 503
    assert flaky.calls[target] == 1


def test_a_retried_request_counts_once_against_the_callers_limit(retrying_gateway, flaky):
    """tollgate runs before Envoy's router, which retries: the caller made one call, and APIM
    counts calls."""
    headers = {KEY: Keys.primary}
    before = requests.get(retrying_gateway.url + path("503", 0, "/counted"), headers=headers,
                          timeout=10)
    target = path("503", 1, "/counted")
    retried = requests.get(retrying_gateway.url + target, headers=headers, timeout=10)
    assert retried.status_code == 200 and flaky.calls[target] == 2
    assert int(retried.headers["x-ratelimit-remaining"]) == \
        int(before.headers["x-ratelimit-remaining"]) - 1


# --- HTTPS: the AKS sidecar's bootstrap, its certificate renewed under it -------------------

def kubelet_secret_volume(directory: Path, version: str) -> tuple[Path, Path]:
    """A Secret volume laid out as the kubelet does: the files in a hidden versioned directory,
    `..data` pointing at it, tls.crt and tls.key pointing through `..data`; a new version is
    swapped in by renaming a new `..data` link over the old one (atomic)."""
    cert, _ = stack.make_certificate(directory / f"..{version}")
    link = directory / "..data_tmp"
    link.symlink_to(f"..{version}")
    link.rename(directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    return directory / "tls.crt", cert


def served_certificate(port: int) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=5))


def pem_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def sidecar_config(tmp_path_factory, backend_port: int) -> tuple[dict, dict, Path, Path]:
    """The sidecar's shipped bootstrap (k8s/sidecar/configmap.yaml: listeners, SDS file, routes)
    on free ports, in front of `backend_port`, reading its certificate from a Kubernetes-like
    Secret directory: (config, listener ports by name, the Secret's directory, its certificate)."""
    where, bootstrap = next((w, b) for w, b in BOOTSTRAPS if w.startswith("k8s/sidecar/"))
    secret = tmp_path_factory.mktemp("secret")
    link, first = kubelet_secret_volume(secret, "2026_12_08_01")
    config = with_test_certificate(with_local_module(copy.deepcopy(bootstrap)),
                                   configmap_files(where), link, secret / "tls.key",
                                   tmp_path_factory.mktemp("sds"))
    ports = {}
    admin = stack.free_port()
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    for listener in config["static_resources"]["listeners"]:
        ports[listener["name"]] = listener["address"]["socket_address"]["port_value"] = \
            stack.free_port()
    by_name = clusters(config)
    local = {"backend": backend_port, "admin": admin, "tollgate_rls": stack.free_port()}
    for name, port in local.items():
        # The cluster's address as in the pod (127.0.0.1), tollgate-rls's too (nothing
        # answers there: global limits fall back to local counting, as without the service).
        by_name[name]["type"] = "STATIC"
        by_name[name].pop("dns_lookup_family", None)
        (group,) = by_name[name]["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        endpoint["endpoint"]["address"]["socket_address"].update(address="127.0.0.1",
                                                                  port_value=port)
    return config, ports, secret, first


@pytest.fixture(scope="module")
def sidecar(workdir, backend, tmp_path_factory):
    """The sidecar's shipped bootstrap in front of the sample backend."""
    config, ports, secret, first = sidecar_config(tmp_path_factory, backend.port)
    envoy = stack.Envoy(workdir, config, name="sidecar-tls")
    yield envoy, ports, secret, first
    envoy.stop()


def test_the_sidecar_serves_https_with_the_secrets_certificate(sidecar):
    envoy, ports, _, first = sidecar
    assert envoy.url.startswith("https://")
    assert served_certificate(ports["ingress"]) == pem_der(first)
    response = requests.get(f"{envoy.url}/healthz", verify=str(first), timeout=10)
    assert response.status_code == 200
    # No plain HTTP on the traffic port...
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{ports['ingress']}/healthz", timeout=5)
    # ... only on the probes' port, for the kubelet.
    assert requests.get(f"http://127.0.0.1:{ports['ops']}/ready", timeout=5).text.strip() == "LIVE"


def test_the_sidecar_serves_a_renewed_certificate_without_a_restart(sidecar):
    envoy, ports, secret, first = sidecar
    assert served_certificate(ports["ingress"]) == pem_der(first)
    _, renewed = kubelet_secret_volume(secret, "2026_12_08_02")
    deadline = time.monotonic() + 10
    while served_certificate(ports["ingress"]) != pem_der(renewed):
        assert time.monotonic() < deadline, "the renewed certificate was not picked up"
        time.sleep(0.1)
    response = requests.get(f"{envoy.url}/healthz", verify=str(renewed), timeout=10)
    assert response.status_code == 200


# --- The sidecar's pod: the app's readiness probe, and Envoy's preStop drain ---------------

def sidecar_containers() -> dict[str, dict]:
    deployment = dict(manifests())["k8s/sidecar/deployment.yaml:Deployment/invoice-validator"]
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_the_apps_readiness_probe_passes_through_the_sidecar(sidecar):
    """What the kubelet sends for the app container's readiness probe, as it sends it: HTTPS to
    the pod's port without checking the certificate, its own Host and User-Agent, no key. The
    probe must pass (2xx or 3xx) while Envoy, tollgate and the app answer."""
    envoy, ports, _, _ = sidecar
    probe = sidecar_containers()["app"]["readinessProbe"]["httpGet"]
    assert probe["scheme"] == "HTTPS"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's warning about the unchecked certificate
        response = requests.get(
            f"https://127.0.0.1:{ports['ingress']}{probe['path']}", verify=False, timeout=5,
            headers={"Host": f"10.244.0.17:{probe['port']}", "User-Agent": "kube-probe/1.31",
                     "Accept": "*/*", "Connection": "close"})
    assert 200 <= response.status_code < 400, response.text


class SlowFirstUpstream:
    """An upstream whose first answer takes `delay` seconds (a request in flight while the pod
    stops) and every later one none."""

    def __init__(self, delay: float):
        self.received = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.received += 1
                if outer.received == 1:
                    time.sleep(delay)
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_sidecars_prestop_drains_and_returns_once_no_request_is_in_flight(workdir,
                                                                              tmp_path_factory):
    """Envoy's preStop hook, as shipped, run by bash against a real Envoy started with the
    Deployment's options: it starts the drain (every answer then closes its connection, new
    connections are still accepted) and returns only once the request in flight is answered.
    Only the admin port (a free one here) and the 15 s of the load balancer's switch-over
    (1 s here) are changed."""
    envoy_container = sidecar_containers()["envoy"]
    args = envoy_container["args"]
    script = envoy_container["lifecycle"]["preStop"]["exec"]["command"][2]
    assert "/dev/tcp/127.0.0.1/9901" in script and "\nsleep 15\n" in script
    upstream = SlowFirstUpstream(delay=4)
    config, _, _, first = sidecar_config(tmp_path_factory, upstream.port)
    drain = ["--drain-strategy", args[args.index("--drain-strategy") + 1]]
    envoy = stack.Envoy(workdir, config, name="sidecar-drain",
                        concurrency=int(args[args.index("--concurrency") + 1]), extra_args=drain)
    try:
        slow: dict = {}

        def in_flight():
            slow["response"] = requests.get(f"{envoy.url}/healthz", verify=str(first), timeout=30)
            slow["answered"] = time.monotonic()

        caller = threading.Thread(target=in_flight)
        caller.start()
        stack.wait_until(lambda: upstream.received == 1, "the request in flight")
        hook = subprocess.Popen(
            ["bash", "-c", script.replace("/dev/tcp/127.0.0.1/9901",
                                          f"/dev/tcp/127.0.0.1/{envoy.admin_port}")
             .replace("\nsleep 15\n", "\nsleep 1\n")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        # Draining: a new connection is still served, and told to go elsewhere next time.
        during = requests.get(f"{envoy.url}/healthz", verify=str(first), timeout=10)
        assert during.status_code == 200
        assert during.headers.get("connection") == "close"
        assert hook.poll() is None, "the hook returned with a request in flight"
        out, err = hook.communicate(timeout=30)
        returned = time.monotonic()
        caller.join(timeout=30)
        assert hook.returncode == 0, out + err
        assert slow["response"].status_code == 200
        # It returned after the answer, within its one-second polling.
        assert slow["answered"] <= returned < slow["answered"] + 3
    finally:
        envoy.stop()
        upstream.stop()
