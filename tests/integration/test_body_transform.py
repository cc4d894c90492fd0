"""Body transforms and backend error masking in a real Envoy in front of the FastAPI backend.

A flow's PascalCase invoice becomes the backend's model (FastAPI's own validation passes); a
body that is not JSON, broken or too large is refused before the handler runs; a response
transform strips a field; a 2xx that is not JSON becomes a 502 naming the request. With
`mask_backend_errors`, a FastAPI traceback, a stopped backend, an upstream timeout and a reset
reach the client as APIM-shaped bodies with the request id, while Envoy's log keeps the
original; FastAPI's 422 passes untouched. An operation without a transform streams a 50 MB
upload: Envoy refuses (413) any request a filter buffers past its 1 MiB buffer limit, so a
50 MB body that reaches the backend whole was never buffered by the module.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

import stack
from conftest import Keys, plugin_config, start_gateway
from http_helpers import seen, tollgate_metric, upstream_requests

KEY_HEADER = "Ocp-Apim-Subscription-Key"
FLOW_TO_MODEL = ("{invoice_id: body.InvoiceNumber, amount: body.Total, "
                 "currency: body.Currency || 'EUR', due_date: body.DueDate, "
                 "po_number: body.PurchaseOrder, submitted_by: consumer}")
MAX_BYTES = 2048
FLOW_INVOICE = {"InvoiceNumber": "INV-77", "Total": "12.50", "DueDate": "2026-12-31",
                "PurchaseOrder": "PO-1"}
INTERNAL = "invoices-db.internal.svc.cluster.local"


def transform_config() -> dict:
    config = plugin_config()
    config["operations"] += [
        {"name": "flow_invoice", "methods": ["POST"], "path": "/flow/invoices",
         "rewrite": "/api/v1/invoices",
         "request_body": {"transform": FLOW_TO_MODEL, "max_bytes": MAX_BYTES}},
        {"name": "flow_strict", "methods": ["POST"], "path": "/flow/strict",
         "rewrite": "/api/v1/invoices", "request_body": {"transform": "{amount: abs(body.Total)}"}},
        {"name": "shaped", "methods": ["POST"], "path": "/shaped", "rewrite": "/api/v1/validate",
         "response_body": {"transform": "{valid: body.valid, problems: body.problems}"}},
        {"name": "shaped_fail", "methods": ["POST"], "path": "/shaped-fail",
         "rewrite": "/api/v1/validate", "response_body": {"transform": "abs(body.valid)"}},
        {"name": "shaped_text", "methods": ["GET"], "path": "/shaped-text",
         "rewrite": "/text/200", "response_body": {"transform": "body"}},
        {"name": "crash", "methods": ["GET"], "path": "/crash", "rewrite": "/crash/report",
         "mask_backend_errors": True},
        {"name": "invoices", "methods": ["POST"], "path": "/invoices",
         "rewrite": "/api/v1/invoices", "mask_backend_errors": True},
        {"name": "slow", "methods": ["GET"], "path": "/slow", "rewrite": "/slow/3",
         "mask_backend_errors": True},
    ]
    return config


@pytest.fixture(scope="module")
def gateway(workdir, backend):
    envoy = start_gateway(workdir, backend, transform_config(), "body-transform")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def key(**extra) -> dict:
    return {KEY_HEADER: Keys.primary, **extra}


def apim(response: requests.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"statusCode", "message"}, body
    assert body["statusCode"] == response.status_code
    return body["message"]


# --- request transforms -------------------------------------------------------------------------


def test_a_flows_invoice_reaches_the_handler_as_the_backends_model(gateway):
    response = requests.post(f"{gateway.url}/flow/invoices", json=FLOW_INVOICE,
                             headers=key(), timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["invoice_id"] == "INV-77"
    assert created["amount"] == "12.50"
    assert created["currency"] == "EUR", "the default currency"
    assert created["po_number"] == "PO-1"
    received = created["received"]
    assert received["path"] == "/api/v1/invoices"
    sent = json.dumps({"amount": "12.50", "currency": "EUR", "due_date": "2026-12-31",
                       "invoice_id": "INV-77", "po_number": "PO-1",
                       "submitted_by": "invoice-flow"}, separators=(",", ":"))
    assert received["body_bytes"] == len(sent), "the whole transformed body, and only it"
    assert ["content-type", "application/json"] in received["headers"]
    # Sent on before its body was read: without a length, to be read to its end.
    assert not [h for h in received["headers"] if h[0] == "content-length"]


def test_a_chunked_flow_body_is_transformed_too(gateway):
    def chunks():
        text = json.dumps(FLOW_INVOICE | {"Currency": "USD"}).encode()
        yield text[:10]
        time.sleep(0.05)
        yield text[10:]
    response = requests.post(f"{gateway.url}/flow/invoices", data=chunks(),
                             headers=key(**{"Content-Type": "application/json"}), timeout=10)
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == "USD"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/x-www-form-urlencoded"])
def test_another_type_than_json_is_415_before_the_backend(gateway, content_type):
    before = upstream_requests(gateway)
    response = requests.post(f"{gateway.url}/flow/invoices", data="InvoiceNumber=INV-1",
                             headers=key(**{"Content-Type": content_type}), timeout=10)
    assert response.status_code == 415
    assert apim(response) == "Request body must be JSON."
    assert upstream_requests(gateway) == before


def test_broken_json_is_400_and_a_body_over_max_bytes_413_before_the_backend(gateway):
    response = requests.post(f"{gateway.url}/flow/invoices", data='{"InvoiceNumber": "INV-1"',
                             headers=key(**{"Content-Type": "application/json"}), timeout=10)
    assert response.status_code == 400
    assert apim(response) == "Request body is not valid JSON."
    before = upstream_requests(gateway)
    big = json.dumps(FLOW_INVOICE | {"Notes": "x" * MAX_BYTES})
    response = requests.post(f"{gateway.url}/flow/invoices", data=big,
                             headers=key(**{"Content-Type": "application/json"}), timeout=10)
    assert response.status_code == 413
    assert apim(response) == f"Request body is larger than {MAX_BYTES} bytes."
    # The declared length was refused with the headers: the backend was never called.
    assert upstream_requests(gateway) == before


def test_a_transform_that_fails_on_the_body_is_400_with_its_error(gateway):
    before = upstream_requests(gateway)
    response = requests.post(f"{gateway.url}/flow/strict", json={"Total": "twelve"},
                             headers=key(), timeout=10)
    assert response.status_code == 400
    assert apim(response) == ("Request body could not be transformed: Argument 0 expects "
                              "type number, given string.")
    # The headers had gone on; the upstream request was reset before its body, never answered.
    assert upstream_requests(gateway) <= before + 1


# --- response transforms ------------------------------------------------------------------------


def test_a_response_transform_strips_a_field(gateway):
    response = requests.post(f"{gateway.url}/shaped", json={"invoice_id": "x"}, headers=key(),
                             timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"valid", "problems"}, "`received` is gone"
    assert body["valid"] is False and body["problems"]


def test_a_2xx_that_is_not_json_becomes_a_502_naming_the_request(gateway):
    response = requests.get(f"{gateway.url}/shaped-text", headers=key(), timeout=10)
    assert response.status_code == 502
    message = apim(response)
    assert message.startswith("Bad gateway. Request id ")
    request_id = message.removeprefix("Bad gateway. Request id ").removesuffix(".")
    assert len(request_id) >= 8
    assert "plain text" not in response.text
    assert tollgate_metric(gateway, "tollgate_response_transform_failures_total.op=shaped_text") == 1


def test_a_2xx_the_transform_fails_on_is_cut_off_never_passed_on(gateway):
    """The failure shows only in the body, after the 200's headers left (Envoy hands a filter
    a body only once its headers went on): the stream is reset, so the client gets an
    incomplete answer it cannot take for a whole one, never the unshaped body."""
    try:
        response = requests.post(f"{gateway.url}/shaped-fail", json={}, headers=key(),
                                 timeout=10)
        cut_off = False
        body = response.content
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        cut_off, body = True, b""
    assert cut_off, (response.status_code, body)
    assert tollgate_metric(gateway, "tollgate_response_transform_failures_total.op=shaped_fail") == 1
    log = wait_for_log(gateway, "operation=shaped_fail")
    assert "reason=the transform failed: Argument 0 expects type number, given boolean" in log


# --- masking ------------------------------------------------------------------------------------


def wait_for_log(envoy, text: str, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = envoy.log()
        if text in log:
            return log
        time.sleep(0.1)
    return envoy.log()


def masked_request_id(response: requests.Response, reason: str) -> str:
    message = apim(response)
    prefix = f"{reason}. Request id "
    assert message.startswith(prefix), message
    return message.removeprefix(prefix).removesuffix(".")


def test_a_fastapi_traceback_is_masked_and_kept_in_the_log(gateway):
    response = requests.get(f"{gateway.url}/crash", headers=key(), timeout=10)
    assert response.status_code == 500
    assert INTERNAL not in response.text and "Traceback" not in response.text
    request_id = masked_request_id(response, "Internal Server Error")
    log = wait_for_log(gateway, f"request_id={request_id}")
    line = next(line for line in log.splitlines() if f"request_id={request_id}" in line)
    assert "masked 500 operation=crash" in line
    # The original's first KiB: the start of the traceback.
    assert "Traceback (most recent call last)" in line, line
    assert tollgate_metric(gateway, "tollgate_masked_errors_total.op=crash") == 1


def test_fastapis_422_passes_untouched(gateway):
    response = requests.post(f"{gateway.url}/invoices", json={"invoice_id": ""}, headers=key(),
                             timeout=10)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(problem["loc"][-1] == "amount" for problem in detail), detail


def test_an_upstream_timeout_is_masked(workdir, backend):
    config = stack.render_envoy_config(transform_config(), listen_port=stack.free_port(),
                                       admin_port=stack.free_port(), backend_port=backend.port)
    route = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["timeout"] = "1s"
    envoy = stack.Envoy(workdir, config, name="body-transform-timeout")
    try:
        response = requests.get(f"{envoy.url}/slow", headers=key(), timeout=10)
        assert response.status_code == 504
        request_id = masked_request_id(response, "Gateway Timeout")
        log = wait_for_log(envoy, f"request_id={request_id}")
    finally:
        envoy.stop()
    assert "upstream request timeout" in log, "Envoy's own text, in the log only"
    assert "upstream request timeout" not in response.text


def test_a_stopped_backend_and_a_reset_are_masked(workdir):
    """Envoy's own 503s (nothing listens; a backend that closes the connection before
    answering) pass through the filter's response callbacks and are masked like the
    backend's."""
    closing = socket.socket()
    closing.bind(("127.0.0.1", 0))
    closing.listen(16)

    def close_everything():
        while True:
            try:
                connection, _ = closing.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.close()

    threading.Thread(target=close_everything, daemon=True).start()
    config = transform_config()
    config["mask_backend_errors"] = True
    results = {}
    for name, port in [("stopped", stack.free_port()), ("reset", closing.getsockname()[1])]:
        envoy_config = stack.render_envoy_config(config, listen_port=stack.free_port(),
                                                 admin_port=stack.free_port(),
                                                 backend_port=port)
        envoy = stack.Envoy(workdir, envoy_config, name=f"body-transform-{name}")
        try:
            response = requests.post(f"{envoy.url}/validate", json={}, headers=key(),
                                     timeout=10)
            assert response.status_code == 503, (name, response.text)
            request_id = masked_request_id(response, "Service Unavailable")
            log = wait_for_log(envoy, f"request_id={request_id}")
            results[name] = (response.text, log)
        finally:
            envoy.stop()
        assert "panicked" not in envoy.log()
    closing.close()
    for name, (text, log) in results.items():
        assert "upstream connect error" not in text and "reset" not in text, name
        line = next(line for line in log.splitlines() if "masked 503" in line)
        assert "upstream connect error or disconnect/reset before headers" in line, (name, line)


# --- streaming ----------------------------------------------------------------------------------


def test_a_50_mb_upload_to_an_operation_without_a_transform_streams(gateway):
    """`validate` has no transform: its body is never buffered by the module. Were it (or any
    filter) to buffer it, Envoy would refuse the request with its own 413 once the buffer passed
    the listener's 1 MiB limit; the backend receives all 50 MB instead."""
    size = 50 * 1024 * 1024

    def chunks():
        block = b"x" * (1024 * 1024)
        for _ in range(50):
            yield block

    response = requests.post(f"{gateway.url}/validate", data=chunks(), headers=key(),
                             timeout=120)
    assert seen(response)["body_bytes"] == size
    stats = requests.get(f"{gateway.admin}/stats?filter=downstream_rq_too_large",
                         timeout=5).text
    assert "http.ingress.downstream_rq_too_large: 0" in stats
    # The same body to an operation that transforms is buffered, and refused at max_bytes.
    response = requests.post(f"{gateway.url}/flow/invoices", data=chunks(),
                             headers=key(**{"Content-Type": "application/json"}), timeout=120)
    assert response.status_code == 413
