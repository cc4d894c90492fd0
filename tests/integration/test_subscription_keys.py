"""Subscription keys, operations and rewrites through a real Envoy to a real FastAPI backend."""

import http.client
import json

import requests

from conftest import Keys
from http_helpers import header_values, seen, upstream_requests

KEY_HEADER = "Ocp-Apim-Subscription-Key"
MISSING = ("Access denied due to missing subscription key. Make sure to include subscription "
           "key when making requests to an API.")
INVALID = ("Access denied due to invalid subscription key. Make sure to provide a valid key "
           "for an active subscription.")
INVOICE = {"invoice_id": "INV-1", "amount": "12.50", "currency": "EUR", "due_date": "2026-12-31"}


def post_validate(gateway, headers=None, query=""):
    return requests.post(f"{gateway.url}/validate{query}", json=INVOICE,
                         headers=headers or {}, timeout=10)


def assert_apim_error(response, status, message):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"statusCode": status, "message": message}


def test_missing_key_is_401_with_challenge_and_never_reaches_backend(gateway):
    before = upstream_requests(gateway)
    response = post_validate(gateway)
    assert_apim_error(response, 401, MISSING)
    host = f"127.0.0.1:{gateway.port}"
    assert response.headers["www-authenticate"] == (
        f'AzureApiManagementKey realm="{host}",name="{KEY_HEADER}",type="header"')
    assert upstream_requests(gateway) == before


def test_invalid_key_is_401_without_echoing_the_key(gateway):
    before = upstream_requests(gateway)
    response = post_validate(gateway, {KEY_HEADER: "not-a-known-key-4711"})
    assert_apim_error(response, 401, INVALID)
    assert "not-a-known-key-4711" not in response.text
    assert "www-authenticate" not in response.headers
    assert upstream_requests(gateway) == before


def test_primary_and_secondary_keys_both_work(gateway):
    for key in (Keys.primary, Keys.secondary):
        response = post_validate(gateway, {KEY_HEADER: key})
        body = response.json()
        assert body["valid"] is True
        received = body["received"]
        assert header_values(received, "x-consumer-id") == ["invoice-flow"]
        assert header_values(received, "x-product") == ["starter"]
        assert header_values(received, KEY_HEADER) == []


def test_key_in_query_is_accepted_and_stripped_from_upstream_query(gateway):
    response = post_validate(gateway, query=f"?lang=de&subscription-key={Keys.primary}&page=2")
    received = seen(response)
    assert received["query"] == "lang=de&page=2"
    assert Keys.primary not in str(received)
    assert header_values(received, "x-consumer-id") == ["invoice-flow"]


def test_header_beats_query(gateway):
    # Valid header, unknown query key: the header decides, both are stripped.
    response = post_validate(gateway, {KEY_HEADER: Keys.portal},
                             query="?subscription-key=unknown-key")
    received = seen(response)
    assert header_values(received, "x-consumer-id") == ["contoso-portal"]
    assert received["query"] == ""
    assert header_values(received, KEY_HEADER) == []
    # Unknown header, valid query key: still the header decides.
    response = post_validate(gateway, {KEY_HEADER: "unknown-key"},
                             query=f"?subscription-key={Keys.portal}")
    assert_apim_error(response, 401, INVALID)


def test_spoofed_identity_headers_are_replaced(gateway):
    # http.client sends a header twice where requests would merge it.
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest("POST", "/validate")
    for name, value in [(KEY_HEADER, Keys.primary), ("x-consumer-id", "admin"),
                        ("x-consumer-id", "root"), ("x-product", "unlimited"),
                        ("x-debug", "1"), ("content-length", "2"),
                        ("content-type", "application/json")]:
        connection.putheader(name, value)
    connection.endheaders(b"{}")
    response = connection.getresponse()
    assert response.status == 200
    received = json.loads(response.read())["received"]
    connection.close()
    assert header_values(received, "x-consumer-id") == ["invoice-flow"]
    assert header_values(received, "x-product") == ["starter"]
    assert header_values(received, "x-debug") == []


def test_product_not_allowed_on_operation_is_403(gateway):
    before = upstream_requests(gateway)
    response = requests.get(f"{gateway.url}/admin/users", headers={KEY_HEADER: Keys.primary},
                            timeout=10)
    assert_apim_error(response, 403,
                      "Product 'starter' is not allowed on operation 'admin'. Access denied.")
    assert upstream_requests(gateway) == before


def test_unmatched_path_and_method_are_404(gateway):
    before = upstream_requests(gateway)
    message = "Unable to match incoming request to an operation."
    response = requests.get(f"{gateway.url}/nowhere", headers={KEY_HEADER: Keys.portal},
                            timeout=10)
    assert_apim_error(response, 404, message)
    response = requests.get(f"{gateway.url}/validate", headers={KEY_HEADER: Keys.portal},
                            timeout=10)
    assert_apim_error(response, 404, message)
    assert upstream_requests(gateway) == before


def test_exact_path_rewrite_keeps_query(gateway):
    response = post_validate(gateway, {KEY_HEADER: Keys.portal}, query="?strict=true&x=%20y")
    received = seen(response)
    assert received["path"] == "/api/v1/validate"
    assert received["query"] == "strict=true&x=%20y"


def test_prefix_rewrite_keeps_the_rest_of_the_path(gateway):
    response = requests.get(f"{gateway.url}/admin/users/7?expand=1",
                            headers={KEY_HEADER: Keys.portal}, timeout=10)
    received = seen(response)
    assert received["path"] == "/internal/users/7"
    assert received["query"] == "expand=1"
    assert header_values(received, "x-consumer-id") == ["contoso-portal"]
    response = requests.get(f"{gateway.url}/v1/items/42", headers={KEY_HEADER: Keys.primary},
                            timeout=10)
    assert seen(response)["path"] == "/api/v1/items/42"
    # A prefix matches on segment boundaries only.
    response = requests.get(f"{gateway.url}/v1/itemsx", headers={KEY_HEADER: Keys.primary},
                            timeout=10)
    assert response.status_code == 404


def test_response_header_rules(gateway, backend):
    # The backend sends x-backend on every response; the validate operation removes it and
    # sets x-served-by, the admin operation has no response rules.
    direct = requests.post(f"http://127.0.0.1:{backend.port}/api/v1/validate", json=INVOICE,
                           timeout=10)
    assert direct.headers["x-backend"] == "fastapi"
    response = post_validate(gateway, {KEY_HEADER: Keys.portal})
    assert response.status_code == 200
    assert "x-backend" not in response.headers
    assert response.headers["x-served-by"] == "tollgate/validate"
    response = requests.get(f"{gateway.url}/admin/x", headers={KEY_HEADER: Keys.portal},
                            timeout=10)
    assert response.headers["x-backend"] == "fastapi"
    assert "x-served-by" not in response.headers


def test_auth_none_needs_no_key_and_drops_spoofed_identity(gateway):
    response = requests.get(f"{gateway.url}/healthz",
                            headers={"x-consumer-id": "admin",
                                     KEY_HEADER: Keys.primary}, timeout=10)
    received = seen(response)
    assert response.json()["status"] == "ok"
    # The template has no consumer here, so the client's copy is removed, never passed on.
    assert header_values(received, "x-consumer-id") == []
    assert header_values(received, KEY_HEADER) == []


def test_identity_headers_are_dropped_on_operations_that_set_none(gateway):
    """"items" sets no header itself, but other operations set x-consumer-id and x-product
    from identity: the client's copies never reach the backend on any route."""
    response = requests.get(f"{gateway.url}/v1/items/7",
                            headers={KEY_HEADER: Keys.primary, "x-consumer-id": "contoso-portal",
                                     "x-product": "unlimited", "x-other": "kept"}, timeout=10)
    received = seen(response)
    assert received["path"] == "/api/v1/items/7"
    assert header_values(received, "x-consumer-id") == []
    assert header_values(received, "x-product") == []
    assert header_values(received, "x-other") == ["kept"]


def test_unmatched_pass_forwards_untouched_but_for_identity_headers(gateway_pass):
    response = requests.get(
        f"{gateway_pass.url}/anything/here?subscription-key=whatever&a=1",
        headers={"x-consumer-id": "client-said", "x-product": "unlimited",
                 "x-other": "client-said"}, timeout=10)
    received = seen(response)
    assert received["path"] == "/anything/here"
    assert received["query"] == "subscription-key=whatever&a=1"
    # Identity headers are tollgate's on every request it forwards: a backend may read them
    # on any route.
    assert header_values(received, "x-consumer-id") == []
    assert header_values(received, "x-product") == []
    assert header_values(received, "x-other") == ["client-said"]
    # Matched operations are still enforced.
    response = requests.post(f"{gateway_pass.url}/validate", json=INVOICE, timeout=10)
    assert response.status_code == 401
