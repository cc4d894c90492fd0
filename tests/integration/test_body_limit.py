"""`max_request_body_bytes` in a real Envoy: a declared length over the limit is refused before
the upstream is called; a chunked body is counted as it streams and refused the moment it passes
the limit, and the upstream never receives the end of that body (Envoy resets it)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

import stack
from conftest import Keys, plugin_config, start_gateway
from http_helpers import seen, upstream_requests

KEY_HEADER = "Ocp-Apim-Subscription-Key"
LIMIT = 1000


def limited_config() -> dict:
    config = plugin_config()
    config["max_request_body_bytes"] = LIMIT
    return config


@pytest.fixture(scope="module")
def gateway(workdir, backend):
    envoy = start_gateway(workdir, backend, limited_config(), "body-limit")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def post(gateway, body: bytes, **headers) -> requests.Response:
    return requests.post(f"{gateway.url}/validate", data=body, timeout=10,
                         headers={KEY_HEADER: Keys.primary, **headers})


def test_a_declared_length_over_the_limit_is_413_and_never_forwarded(gateway):
    before = upstream_requests(gateway)
    response = post(gateway, b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"statusCode": 413,
                               "message": f"Request body is larger than {LIMIT} bytes."}
    assert upstream_requests(gateway) == before
    # Checked before credentials: no key needed to be told the body is too large.
    anonymous = requests.post(f"{gateway.url}/validate", data=b"x" * (LIMIT + 1), timeout=10)
    assert anonymous.status_code == 413


def test_a_body_at_the_limit_reaches_the_backend_whole(gateway):
    response = post(gateway, b"x" * LIMIT)
    assert seen(response)["body_bytes"] == LIMIT


def chunks(parts: list[bytes], pause_s: float = 0.0):
    for part in parts:
        yield part
        time.sleep(pause_s)


def test_a_chunked_body_under_the_limit_streams_through(gateway):
    response = requests.post(f"{gateway.url}/validate", timeout=10,
                             data=chunks([b"a" * 400, b"b" * 400], 0.05),
                             headers={KEY_HEADER: Keys.primary})
    received = seen(response)
    assert received["body_bytes"] == 800
    assert ["transfer-encoding", "chunked"] in received["headers"]


def test_a_chunked_body_over_the_limit_is_413_and_the_upstream_never_sees_its_end(workdir):
    """The upstream here is a socket that records the bytes it gets and never answers, so the
    test sees exactly what reached it: the first chunk, never the chunked body's last one."""
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(8)
    received: list[bytes] = []

    def record():
        try:
            connection, _ = upstream.accept()
        except OSError:
            return
        with connection:
            while data := connection.recv(65536):
                received.append(data)

    threading.Thread(target=record, daemon=True).start()
    config = stack.render_envoy_config(
        limited_config(), listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=upstream.getsockname()[1])
    envoy = stack.Envoy(workdir, config, name="body-limit-raw", concurrency=1)
    try:
        with socket.create_connection(("127.0.0.1", envoy.port), timeout=10) as client:
            client.sendall(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           + f"{KEY_HEADER}: {Keys.primary}\r\n".encode()
                           + b"Transfer-Encoding: chunked\r\n\r\n")
            client.sendall(b"258\r\n" + b"a" * 600 + b"\r\n")  # 600 bytes: under the limit
            time.sleep(0.5)  # forwarded: the upstream has the headers and the first chunk
            forwarded = b"".join(received)
            client.sendall(b"258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n")  # 1,200: over it
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = client.recv(65536)
                if not data:
                    break
                reply += data
        assert reply.startswith(b"HTTP/1.1 413"), reply
        assert b"Request body is larger than 1000 bytes." in reply
        time.sleep(0.3)
        upstream_saw = b"".join(received)
        assert b"POST /api/v1/validate" in forwarded and b"a" * 600 in forwarded, forwarded
        assert b"b" * 600 not in upstream_saw
        assert not upstream_saw.endswith(b"0\r\n\r\n"), "the body never ends upstream"
    finally:
        envoy.stop()
        upstream.close()
    assert "panicked" not in envoy.log()
