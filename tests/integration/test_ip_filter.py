"""The caller IP filter through a real Envoy: the allow list made by `tollgate service-tags`
from the test service tags file, per-operation lists and `null`, what X-Forwarded-For can and
cannot do with the connection manager's settings, and the `ip_forbidden` metric."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

import stack
from conftest import Keys, plugin_config, start_gateway
from http_helpers import seen, upstream_requests
from test_metrics import prometheus, series

KEY_HEADER = "Ocp-Apim-Subscription-Key"
SERVICE_TAGS = (Path(__file__).resolve().parents[1] / "data" / "service-tags"
                / "ServiceTags_Public_20261130.json")
TAGS = ["AzureConnectors.WestEurope", "AzureConnectors.NorthEurope"]
FORBIDDEN = {"statusCode": 403, "message": "Forbidden"}
# Inside 13.69.227.208/28 (AzureConnectors.WestEurope in the test file), and outside every tag.
CONNECTOR_ADDRESS = "13.69.227.210"
STRANGER = "203.0.113.9"


@pytest.fixture(scope="module")
def connector_prefixes() -> list[str]:
    """The test file's connector prefixes, as the operator gets them for ip_filter.allow."""
    args = ["service-tags", str(SERVICE_TAGS)]
    for tag in TAGS:
        args += ["--tag", tag]
    result = stack.tollgate_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "changeNumber 345" in result.stderr
    prefixes = json.loads(result.stdout)
    assert "13.69.227.208/28" in prefixes and "2603:1020:206::/58" in prefixes
    return prefixes


@pytest.fixture(scope="module")
def edge(workdir, backend, connector_prefixes):
    """The reference Envoy config (use_remote_address: true): only the connectors' addresses
    by default, which leaves out the tests' own 127.0.0.1."""
    config = plugin_config()
    config["ip_filter"] = {"allow": connector_prefixes}
    operations = {op["name"]: op for op in config["operations"]}
    operations["items"]["ip_filter"] = {"allow": ["127.0.0.0/8", "::1"]}
    operations["health"]["ip_filter"] = None
    operations["admin"]["ip_filter"] = {"forbid": ["127.0.0.1"]}
    envoy = start_gateway(workdir, backend, config, "ip-filter-edge")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


@pytest.fixture(scope="module")
def behind_load_balancer(workdir, backend, connector_prefixes):
    """One trusted hop in front (an Azure load balancer or ingress that appends the client to
    X-Forwarded-For)."""
    config = plugin_config()
    config["ip_filter"] = {"allow": connector_prefixes}
    envoy = start_gateway(workdir, backend, config, "ip-filter-behind-lb",
                          connection_manager={"use_remote_address": True,
                                              "xff_num_trusted_hops": 1})
    yield envoy
    envoy.stop()


def get_items(envoy, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{envoy.url}/v1/items/42",
                        headers={KEY_HEADER: Keys.primary, **(headers or {})}, timeout=10)


def assert_forbidden(response: requests.Response):
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == FORBIDDEN


def test_a_caller_outside_the_list_gets_403_before_its_key_is_read(edge):
    before = upstream_requests(edge)
    for headers in ({KEY_HEADER: Keys.primary}, {KEY_HEADER: "unknown-key"}, {}):
        response = requests.post(f"{edge.url}/validate", json={}, headers=headers, timeout=10)
        assert_forbidden(response)
    assert upstream_requests(edge) == before, "the backend saw nothing"


def test_a_list_that_includes_the_caller_admits_it(edge):
    received = seen(get_items(edge))
    assert received["path"] == "/api/v1/items/42"


def test_null_switches_the_filter_off_for_an_operation(edge):
    assert requests.get(f"{edge.url}/healthz", timeout=10).status_code == 200


def test_an_operation_forbid_list_replaces_the_top_level_allow_list(edge):
    response = requests.get(f"{edge.url}/admin/x", headers={KEY_HEADER: Keys.portal}, timeout=10)
    assert_forbidden(response)


def test_unmatched_requests_meet_the_top_level_filter(edge):
    assert_forbidden(requests.get(f"{edge.url}/nowhere", timeout=10))


def test_a_forged_x_forwarded_for_changes_nothing_with_use_remote_address(edge):
    hcm = stack.load_reference()["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"][0]["typed_config"]
    assert hcm["use_remote_address"] is True, "the shipped config must not trust X-Forwarded-For"
    before = upstream_requests(edge)
    forged = {"X-Forwarded-For": CONNECTOR_ADDRESS}
    response = requests.post(f"{edge.url}/validate", json={},
                             headers={KEY_HEADER: Keys.primary, **forged}, timeout=10)
    assert_forbidden(response)
    assert upstream_requests(edge) == before
    # Nor does it shut out a caller the list lets in.
    assert get_items(edge, {"X-Forwarded-For": STRANGER}).status_code == 200


def test_behind_one_trusted_hop_the_address_that_hop_appended_is_filtered(behind_load_balancer):
    envoy = behind_load_balancer
    assert get_items(envoy, {"X-Forwarded-For": CONNECTOR_ADDRESS}).status_code == 200
    assert get_items(envoy, {"X-Forwarded-For": "2603:1020:206::1"}).status_code == 200
    # What the client wrote before the trusted hop's own entry is not the caller.
    assert get_items(envoy, {"X-Forwarded-For": f"{STRANGER}, {CONNECTOR_ADDRESS}"}).status_code == 200
    assert_forbidden(get_items(envoy, {"X-Forwarded-For": f"{CONNECTOR_ADDRESS}, {STRANGER}"}))
    assert_forbidden(get_items(envoy, {"X-Forwarded-For": STRANGER}))
    # No header: the peer (127.0.0.1), outside the list.
    assert_forbidden(get_items(envoy))


def test_refusals_are_counted_as_ip_forbidden(edge):
    assert_forbidden(requests.post(f"{edge.url}/validate", json={}, timeout=10))
    assert_forbidden(requests.get(f"{edge.url}/nowhere", timeout=10))
    counted = series(prometheus(edge), "tollgate_requests_total")
    refused = {dict(labels)["operation"]: value for labels, value in counted.items()
               if dict(labels)["outcome"] == "ip_forbidden"}
    assert refused["validate"] >= 1
    assert refused["-"] >= 1
    assert "admin" in refused, "defined for an operation with its own list"
    assert "health" not in refused, "no series where no filter applies"
    assert refused.get("items") == 0


def raw_status(family: int, host: str, port: int, request: bytes) -> int:
    """The status of one HTTP/1.1 request sent over a socket of `family`."""
    with socket.socket(family) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    return int(head.split(b" ", 2)[1])


def test_a_dual_stack_listener_filters_ipv4_callers_however_they_connect(workdir, backend):
    """A listener on [::] taking IPv4 too (ipv4_compat): an IPv4 caller, whether it connects
    over IPv4 or as an IPv4-mapped IPv6 address (::ffff:127.0.0.1), is the IPv4 caller for the
    filter: a forbid list naming 127.0.0.1 refuses it both ways, and an allow list naming only
    ::1 lets in ::1 and neither of them."""
    config = plugin_config()
    operations = {op["name"]: op for op in config["operations"]}
    operations["items"]["ip_filter"] = {"forbid": ["127.0.0.1"]}
    operations["health"]["ip_filter"] = {"allow": ["::1"]}
    envoy_config = stack.render_envoy_config(config, listen_port=stack.free_port(),
                                             admin_port=stack.free_port(),
                                             backend_port=backend.port)
    address = envoy_config["static_resources"]["listeners"][0]["address"]["socket_address"]
    address.update(address="::", ipv4_compat=True)
    envoy = stack.Envoy(workdir, envoy_config, name="ip-filter-dual-stack")
    try:
        items = (f"GET /v1/items/1 HTTP/1.1\r\nHost: x\r\n{KEY_HEADER}: {Keys.primary}\r\n"
                 "Connection: close\r\n\r\n").encode()
        health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        callers = {"ipv4": (socket.AF_INET, "127.0.0.1"),
                   "mapped": (socket.AF_INET6, "::ffff:127.0.0.1"),
                   "ipv6": (socket.AF_INET6, "::1")}
        statuses = {name: (raw_status(family, host, envoy.port, items),
                           raw_status(family, host, envoy.port, health))
                    for name, (family, host) in callers.items()}
        assert statuses == {"ipv4": (403, 403), "mapped": (403, 403), "ipv6": (200, 200)}
    finally:
        envoy.stop()
    assert "panicked" not in envoy.log()
