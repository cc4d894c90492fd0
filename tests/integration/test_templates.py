"""URL-template operations through a real Envoy in front of the sample FastAPI backend, on the
demo's own configuration (`tollgate init` from the backend's OpenAPI + the demo's policy): every
documented operation answers as documented, and nothing else reaches the backend — not its test
routes, not a method the API does not define on a path, not a deeper path under a template."""

from __future__ import annotations

import json

import pytest
import requests

import demo
import shipped
import stack
from conftest import Keys, sha256_ref, start_gateway
from http_helpers import raw_request, seen, upstream_requests

KEY = "Ocp-Apim-Subscription-Key"
NOT_FOUND = {"statusCode": 404, "message": "Unable to match incoming request to an operation."}
INVOICE = {"invoice_id": "INV-1", "amount": "12.50", "currency": "EUR", "due_date": "2026-12-31"}


def with_test_keys(plugin: dict) -> dict:
    """The demo's consumers holding the test keys: invoice-flow (starter) the primary and
    secondary, contoso-portal (unlimited) and partner-app the portal key's siblings."""
    keys = {"invoice-flow": [Keys.primary, Keys.secondary], "contoso-portal": [Keys.portal],
            "partner-app": [Keys.portal + "-partner"]}
    for consumer in plugin["consumers"]:
        consumer["keys"] = [sha256_ref(key) for key in keys[consumer["id"]]]
    # Global limits need a rate-limit service these tests do not run: partner's limits local.
    plugin.pop("global_limits", None)
    for product in plugin["products"].values():
        for limit in product.values():
            limit.pop("scope", None)
    return plugin


@pytest.fixture(scope="module")
def demo_gateway(workdir, backend):
    envoy = start_gateway(workdir, backend, with_test_keys(demo.demo_plugin()), "templates")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def portal() -> dict:
    return {KEY: Keys.portal}


# One request per operation of the backend's OpenAPI, as a caller of the public API sends it:
# (method, public path, request arguments, documented status, backend path it must reach).
DOCUMENTED = [
    ("GET", "/healthz", {}, 200, "/healthz"),
    ("POST", "/validate", {"json": INVOICE}, 200, "/api/v1/validate"),
    ("GET", "/invoices", {"params": {"status": "paid", "limit": "2"}}, 200, "/api/v1/invoices"),
    ("POST", "/invoices", {"json": INVOICE}, 201, "/api/v1/invoices"),
    ("GET", "/invoices/INV-7", {}, 200, "/api/v1/invoices/INV-7"),
    ("POST", "/invoices/INV-7/attachments",
     {"files": {"file": ("a.txt", b"hello")}, "data": {"kind": "other"}}, 201,
     "/api/v1/invoices/INV-7/attachments"),
]


def test_the_table_covers_every_operation_of_the_backend_openapi():
    documented = {(method, f"{backend_path}") for method, _, _, _, backend_path in DOCUMENTED}
    openapi = demo.backend_openapi()
    in_openapi = set()
    for path, item in openapi["paths"].items():
        for method in item:
            in_openapi.add((method.upper(), path))
    # The documented paths with their parameters filled in.
    filled = {(m, p.replace("INV-7", "{invoice_id}")) for m, p in documented}
    assert filled == in_openapi


@pytest.mark.parametrize("method,public,arguments,status,backend_path", DOCUMENTED,
                         ids=[f"{m} {p}" for m, p, *_ in DOCUMENTED])
def test_every_documented_operation_answers_as_documented(demo_gateway, method, public, arguments,
                                                           status, backend_path):
    response = requests.request(method, f"{demo_gateway.url}{public}", headers=portal(),
                                timeout=10, **arguments)
    assert response.status_code == status, response.text
    received = response.json()["received"]
    assert received["path"] == backend_path
    assert received["method"] == method


@pytest.mark.parametrize("method,path", [
    ("GET", "/status/200"),                  # the backend's test route, not in its OpenAPI
    ("GET", "/anything/else"),               # its catch-all
    ("GET", "/api/v1/invoices/INV-1"),       # the backend path itself is not public
    ("POST", "/invoices/INV-1"),             # a method the API does not define there
    ("DELETE", "/invoices"),
    ("PUT", "/validate"),
    ("GET", "/validate"),
    ("GET", "/invoices/a/b"),                # deeper than the template
    ("GET", "/invoices/INV-1/attachments"),  # GET where only POST is defined
    ("GET", "/invoices/INV-1/history"),
    ("GET", "/invoices/"),                   # an empty parameter
    ("GET", "/healthz/x"),
])
def test_anything_the_openapi_does_not_define_is_404_and_never_reaches_the_backend(
        demo_gateway, method, path):
    before = upstream_requests(demo_gateway)
    response = requests.request(method, f"{demo_gateway.url}{path}", headers=portal(), timeout=10)
    assert response.status_code == 404, response.text
    assert response.json() == NOT_FOUND
    assert upstream_requests(demo_gateway) == before


def test_dot_segments_and_encoded_slashes_never_fill_a_parameter(demo_gateway):
    """Sent raw (requests would normalise them): Envoy normalises dot segments and redirects
    escaped slashes before tollgate; whatever reaches tollgate, a parameter never takes them."""
    before = upstream_requests(demo_gateway)
    for target in (b"/invoices/%2e%2e", b"/invoices/./", b"/invoices/%2E"):
        status, _ = raw_request(demo_gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                + f"{KEY}: {Keys.portal}\r\n".encode() + b"Connection: close\r\n\r\n")
        assert status in (404, 307, 400), (target, status)
    assert upstream_requests(demo_gateway) == before


def test_a_parameter_reaches_the_backend_byte_for_byte(demo_gateway):
    response = requests.get(f"{demo_gateway.url}/invoices/INV%201", headers=portal(), timeout=10)
    assert response.status_code == 200, response.text
    received = seen(response)
    assert received["raw_path"] == "/api/v1/invoices/INV%201"
    assert received["path"] == "/api/v1/invoices/INV 1"


def test_head_goes_through_the_get_template_and_its_policy(demo_gateway):
    assert requests.head(f"{demo_gateway.url}/invoices/INV-1", headers=portal(),
                         timeout=10).status_code == 200
    assert requests.head(f"{demo_gateway.url}/invoices/INV-1", timeout=10).status_code == 401


def test_a_templates_policy_is_its_own(demo_gateway):
    """upload_attachment is for partner and unlimited only; starter's key may read invoices."""
    starter = {KEY: Keys.primary}
    assert requests.get(f"{demo_gateway.url}/invoices/INV-1", headers=starter,
                        timeout=10).status_code == 200
    response = requests.post(f"{demo_gateway.url}/invoices/INV-1/attachments", headers=starter,
                             files={"file": ("a.txt", b"x")}, timeout=10)
    assert response.status_code == 403, response.text
    # The identity header comes from tollgate, whatever the client sent.
    response = requests.get(f"{demo_gateway.url}/invoices/INV-1",
                            headers={**starter, "x-consumer-id": "contoso-portal"}, timeout=10)
    headers = [value for name, value in seen(response)["headers"] if name == "x-consumer-id"]
    assert headers == ["invoice-flow"]


def test_the_shipped_configurations_are_what_init_makes(tmp_path):
    """Every shipped configuration of the demo's API (envoy/, the AKS sidecar, the Istio
    WasmPlugin) holds the operations `tollgate init` makes from the backend's OpenAPI today,
    and passes `check --openapi --strict`: what is shipped never drifts from the API it fronts.
    (envoy-entra.yaml is the JWT example, with an operation list of its own.)"""
    made = [{k: op[k] for k in demo.INIT_KEYS if k in op}
            for op in demo.init_operations(demo.backend_openapi())]
    openapi = tmp_path / "openapi.json"
    openapi.write_text(json.dumps(demo.backend_openapi()))
    checked_any = 0
    for n, (where, text) in enumerate(shipped.plugin_configurations()):
        if "entra" in where:
            continue
        plugin = json.loads(text)
        shipped_ops = [{k: op[k] for k in demo.INIT_KEYS if k in op} for op in plugin["operations"]]
        assert shipped_ops == made, where
        config = tmp_path / f"plugin-{n}.json"
        config.write_text(text)
        checked = stack.tollgate_cli("check", str(config), "--openapi", str(openapi), "--strict")
        assert checked.returncode == 0, (where, checked.stdout + checked.stderr)
        assert "no drift" in checked.stdout
        checked_any += 1
    assert checked_any == 4
