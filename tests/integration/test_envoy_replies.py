"""Replies Envoy makes itself, before or instead of tollgate: in APIM's JSON shape, never
echoing the request back. Every shipped Envoy configuration refuses an escaped slash (400)
instead of redirecting it (a redirect's Location repeats the query string, the subscription
key included), and maps Envoy's own replies to `{"statusCode": N, "message": ...}` while
leaving tollgate's as they are."""

from __future__ import annotations

import json

import pytest

import stack
from conftest import Keys
from http_helpers import raw_request
from shipped import envoy_bootstraps
from test_templates import with_test_keys

import demo

KEY = "Ocp-Apim-Subscription-Key"


def connection_manager(bootstrap: dict) -> dict:
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


@pytest.mark.parametrize("where,bootstrap", envoy_bootstraps(), ids=[w for w, _ in envoy_bootstraps()])
def test_every_shipped_envoy_refuses_escaped_slashes_and_shapes_its_own_replies(where, bootstrap):
    hcm = connection_manager(bootstrap)
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST", where
    assert hcm["normalize_path"] is True and hcm["merge_slashes"] is True
    mappers = hcm["local_reply_config"]["mappers"]
    for mapper in mappers:
        expression = mapper["filter"]["extension_filter"]["typed_config"]["expression"]
        # Only Envoy's own replies (they carry response code details); tollgate's carry none.
        assert expression.startswith("response.code_details != ''"), where
        body = mapper["body_format_override"]["json_format"]
        assert set(body) == {"statusCode", "message"} and body["statusCode"] == "%RESPONSE_CODE%"
    assert mappers[-1]["filter"]["extension_filter"]["typed_config"]["expression"] == \
        "response.code_details != ''", "a last mapper catches every other reply of Envoy's"


@pytest.fixture(scope="module")
def reference_gateway(workdir, backend):
    """The reference envoy/envoy.yaml with the demo's configuration, in front of the
    backend."""
    plugin = with_test_keys(demo.demo_plugin())
    config = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                       admin_port=stack.free_port(), backend_port=backend.port)
    envoy = stack.Envoy(workdir, config, name="replies")
    yield envoy
    envoy.stop()


def send(envoy, head: bytes) -> tuple[int, dict[str, str], bytes]:
    status, raw = raw_request(envoy.port, head)
    head_text, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head_text.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def apim(body: bytes, status: int) -> str:
    document = json.loads(body)
    assert set(document) == {"statusCode", "message"}, document
    assert document["statusCode"] == status
    return document["message"]


@pytest.mark.parametrize("target", [b"/invoices/a%2Fb", b"/invoices/a%5Cb", b"/invoices/a%2fb"])
def test_an_escaped_slash_is_refused_without_echoing_the_request(reference_gateway, target):
    secret = Keys.portal.encode()
    status, headers, body = send(
        reference_gateway,
        b"GET " + target + b"?subscription-key=" + secret + b"&a=1 HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n")
    assert status == 400
    assert "location" not in headers
    assert headers["content-type"] == "application/json"
    assert apim(body, 400).startswith("Bad request")
    assert secret not in body


@pytest.mark.parametrize("head,status", [
    (b"FOO / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    (b"GET /a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    (b"GET /a#b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\nConnection: close\r\n\r\n",
     431),
], ids=["unknown method", "NUL", "fragment", "64 KiB header"])
def test_envoys_own_refusals_are_apim_shaped(reference_gateway, head, status):
    got, headers, body = send(reference_gateway, head)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert apim(body, status)


def test_tollgates_own_replies_are_left_as_they_are(reference_gateway):
    status, headers, body = send(reference_gateway,
                                 b"GET /invoices/INV-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401
    assert apim(body, 401).startswith("Access denied due to missing subscription key.")
    assert headers["www-authenticate"].startswith("AzureApiManagementKey")
    status, _, body = send(reference_gateway,
                           b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 404
    assert apim(body, 404) == "Unable to match incoming request to an operation."


def test_envoys_own_503_is_apim_shaped(workdir):
    plugin = with_test_keys(demo.demo_plugin())
    config = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                       admin_port=stack.free_port(),
                                       backend_port=stack.free_port())  # nothing listens
    envoy = stack.Envoy(workdir, config, name="replies-down")
    try:
        status, headers, body = send(envoy, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n")
    finally:
        envoy.stop()
    assert status == 503
    assert headers["content-type"] == "application/json"
    assert apim(body, 503)
