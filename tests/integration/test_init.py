"""`tollgate init` and `tollgate check --openapi` (docs/configuration.md, "URL templates";
docs/cli.md):
a configuration made from FastAPI's OpenAPI, on the sample backend and on an "edge" FastAPI app
(tests/integration/edge_app/app.py: a root path, nested routers, several methods on one path, one
function for two methods, typed parameters, a literal beside a parameter, a hidden route).

What init writes is checked against what the tests compute themselves from FastAPI's own route
list (not from init's output): then it must pass `tollgate check`, load in a real Envoy, let the
key it printed through to the right handler for every operation, give a connector with exactly
one operation per FastAPI operation, and `check --openapi --strict` must see drift both ways.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import fastapi.routing
import pytest
import requests
import yaml

import connector_helpers as ch
import stack
from conftest import sha256_ref, start_gateway

EDGE_DIR = Path(__file__).resolve().parent / "edge_app"
KEY_LINE = re.compile(r"^key:  ([0-9a-f]{64})$", re.MULTILINE)
WROTE_LINE = re.compile(r"^wrote (.+) \((\d+) operations\)$", re.MULTILINE)
TOLLGATE_ERROR_KEYS = {"statusCode", "message"}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
INVOICE = {"invoice_id": "INV-1", "amount": "12.50", "currency": "EUR", "due_date": "2026-12-31"}
# The sample backend's operations that need a body to answer 2xx (by FastAPI function name).
REQUEST_BODIES: dict[str, dict] = {
    "validate": {"json": INVOICE},
    "create_invoice": {"json": INVOICE},
    "upload_attachment": {"files": {"file": ("scan.pdf", b"%PDF-1.4 init test\n",
                                             "application/pdf")},
                          "data": {"kind": "other"}},
}
EXTRA_ROUTE = ("POST", "/svc/v2/orders/{order_id}/refund")


# --- the apps, their OpenAPI and FastAPI's own list of routes -------------------------------------

@lru_cache(maxsize=None)
def edge_module(extra: bool = False):
    """edge_app/app.py imported under its own name, with EDGE_EXTRA_ROUTE=1 or without it."""
    name = "tollgate_edge_app_extra" if extra else "tollgate_edge_app"
    saved = os.environ.pop("EDGE_EXTRA_ROUTE", None)
    try:
        if extra:
            os.environ["EDGE_EXTRA_ROUTE"] = "1"
        spec = importlib.util.spec_from_file_location(name, EDGE_DIR / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.pop("EDGE_EXTRA_ROUTE", None)
        if saved is not None:
            os.environ["EDGE_EXTRA_ROUTE"] = saved
    return module


def openapi_of(app) -> dict:
    with warnings.catch_warnings():
        # search_orders (GET and POST) gets one operationId twice from FastAPI: init must cope.
        warnings.simplefilter("ignore")
        return json.loads(json.dumps(app.openapi()))


def edge_openapi(extra: bool = False) -> dict:
    return openapi_of(edge_module(extra).service)


def server_prefix(openapi: dict) -> str:
    servers = openapi.get("servers") or [{}]
    return re.sub(r"^[a-z]+://[^/]+", "", servers[0].get("url", "")).rstrip("/")


def fastapi_routes(app, prefix: str) -> dict[tuple[str, str], str]:
    """(METHOD, backend path) → function name, for every route FastAPI puts in its OpenAPI, read
    from the app's routes (nested routers flattened) rather than from the document."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.13x
    routes = list(flatten(app.routes)) if flatten else list(app.routes)
    found = {}
    for route in routes:
        if not isinstance(getattr(route, "original_route", route), fastapi.routing.APIRoute):
            continue
        if not route.include_in_schema:
            continue
        for method in route.methods:
            found[(method, prefix + route.path_format)] = route.endpoint.__name__
    return found


def expected_public(backend_path: str, backend_prefix: str, public_prefix: str) -> str:
    """The public path of a backend path: the backend prefix replaced by the public one; a path
    outside the backend prefix keeps its own path, under the public prefix."""
    rest = backend_path
    if backend_prefix and (backend_path == backend_prefix
                           or backend_path.startswith(backend_prefix.rstrip("/") + "/")):
        rest = backend_path[len(backend_prefix.rstrip("/")):]
    return (public_prefix.rstrip("/") + rest) or "/"


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], template)


def resolve(openapi: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def path_value(openapi: dict, schema: dict) -> str:
    schema = resolve(openapi, schema)
    if schema.get("enum"):
        return str(schema["enum"][0])
    if schema.get("examples"):
        return str(schema["examples"][0])
    if schema.get("type") == "integer":
        return "7"
    if schema.get("format") in ch.STRING_FORMATS:
        return ch.STRING_FORMATS[schema["format"]]
    return "abc-1"


def path_values(openapi: dict, method: str, backend_path: str) -> dict[str, str]:
    """A valid value for each path parameter of an operation, from FastAPI's OpenAPI."""
    key = backend_path[len(server_prefix(openapi)):]
    operation = openapi["paths"][key][method.lower()]
    return {parameter["name"]: path_value(openapi, parameter.get("schema", {}))
            for parameter in operation.get("parameters", []) if parameter["in"] == "path"}


# --- the edge app under uvicorn -------------------------------------------------------------------

class EdgeBackend:
    """edge_app/app.py under uvicorn (as stack.Backend runs the sample backend), without the
    extra route."""

    def __init__(self, workdir: Path):
        self.port = stack.free_port()
        self.log_path = workdir / "edge-backend.log"
        env = {name: value for name, value in os.environ.items() if name != "EDGE_EXTRA_ROUTE"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(EDGE_DIR), "app:app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
        stack.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{self.port}/svc/healthz", timeout=1).ok,
            "edge backend", process=self.process)

    def stop(self):
        stack.stop(self.process)


@pytest.fixture(scope="module")
def edge_backend(workdir):
    server = EdgeBackend(workdir)
    yield server
    server.stop()


# --- running init -------------------------------------------------------------------------------

@dataclass
class Init:
    result: subprocess.CompletedProcess
    path: Path
    openapi_path: Path

    @property
    def config(self) -> dict:
        return json.loads(self.path.read_text())

    @property
    def key(self) -> str:
        found = KEY_LINE.findall(self.result.stderr)
        assert len(found) == 1, self.result.stderr
        return found[0]


def run_init(directory: Path, openapi: dict | str, *flags: str, out: str = "tollgate.json") -> Init:
    directory.mkdir(parents=True, exist_ok=True)
    openapi_path = directory / "openapi.json"
    openapi_path.write_text(openapi if isinstance(openapi, str) else json.dumps(openapi))
    path = directory / out
    result = stack.tollgate_cli("init", "--openapi", str(openapi_path), "--out", str(path), *flags)
    return Init(result, path, openapi_path)


def check(config: Path, *flags: str) -> subprocess.CompletedProcess:
    return stack.tollgate_cli("check", str(config), *flags)


def drift(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines()
            if line.startswith(("not exposed: ", "reaches nothing: "))]


@dataclass
class Variant:
    name: str
    app: str                      # "sample" or "edge"
    backend_prefix: str
    public_prefix: str
    openapi: dict
    routes: dict[tuple[str, str], str]
    init: Init
    flags: list[str] = field(default_factory=list)


VARIANTS = {
    "sample": ("sample", "/api/v1", "/"),
    "edge": ("edge", "", "/"),
    "edge-svc": ("edge", "/svc", "/"),
    "edge-v2-public": ("edge", "/svc/v2", "/edge"),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tmp_path_factory) -> Variant:
    app, backend_prefix, public_prefix = VARIANTS[request.param]
    if app == "sample":
        openapi = ch.backend_openapi()
        routes = fastapi_routes(ch.backend_module().app, server_prefix(openapi))
    else:
        openapi = edge_openapi()
        routes = fastapi_routes(edge_module().service, server_prefix(openapi))
    flags = []
    if backend_prefix:
        flags += ["--backend-prefix", backend_prefix]
    if public_prefix != "/":
        flags += ["--public-prefix", public_prefix]
    init = run_init(tmp_path_factory.mktemp(f"init-{request.param}"), openapi, *flags)
    return Variant(request.param, app, backend_prefix, public_prefix, openapi, routes, init,
                   flags)


def ok(variant: Variant) -> dict:
    assert variant.init.result.returncode == 0, variant.init.result.stderr
    return variant.init.config


def backend_path(operation: dict) -> str:
    return operation.get("rewrite", operation.get("path_template"))


# --- 1. what init writes --------------------------------------------------------------------------

def test_edge_app_is_what_the_tests_say():
    """The edge app has the shapes the other tests rely on (a guard against editing it)."""
    openapi = edge_openapi()
    assert server_prefix(openapi) == "/svc"
    routes = fastapi_routes(edge_module().service, "/svc")
    assert routes[("GET", "/svc/v2/orders/{order_id}")] == "get_order"
    assert {m for (m, p) in routes if p == "/svc/v2/orders/{order_id}"} == {"GET", "PUT", "DELETE"}
    assert {m for (m, p) in routes if p == "/svc/v2/orders/search"} == {"GET", "POST"}
    paths = list(openapi["paths"])
    assert paths.index("/v2/orders/{order_id}") < paths.index("/v2/orders/export")
    assert not any("debug" in path for _, path in routes)
    assert EXTRA_ROUTE not in routes
    assert EXTRA_ROUTE in fastapi_routes(edge_module(extra=True).service, "/svc")
    assert ch.openapi_operations(openapi) == set(routes)


def test_init_writes_one_operation_per_fastapi_operation(variant):
    config = ok(variant)
    stdout = variant.init.result.stdout
    wrote = WROTE_LINE.search(stdout)
    assert wrote, stdout
    assert wrote.group(1).endswith("tollgate.json") and int(wrote.group(2)) == len(variant.routes)
    operations = config["operations"]
    assert len(operations) == len(variant.routes)
    reached = {}
    for operation in operations:
        assert "path" not in operation and "path_prefix" not in operation, operation
        assert len(operation["methods"]) == 1, operation
        assert operation.get("auth") == "subscription_key", operation
        if "rewrite" in operation:
            assert operation["rewrite"] != operation["path_template"], operation
        key = (operation["methods"][0], backend_path(operation))
        assert key not in reached, f"two operations for {key}"
        reached[key] = operation
        assert operation["path_template"] == expected_public(
            key[1], variant.backend_prefix, variant.public_prefix), operation
    assert set(reached) == set(variant.routes)

    # Names: FastAPI's function names, made unique where one function has several operations.
    names = [operation["name"] for operation in operations]
    assert len(names) == len(set(names)), names
    per_function: dict[str, int] = {}
    for function in variant.routes.values():
        per_function[function] = per_function.get(function, 0) + 1
    for key, operation in reached.items():
        function = variant.routes[key]
        assert NAME.match(operation["name"]), operation["name"]
        if per_function[function] == 1:
            assert operation["name"] == function
        else:
            assert operation["name"].startswith(function), (operation["name"], function)
            # Made unique, but never named after another method than its own.
            other = re.search(r"_(get|put|post|delete|patch|head|options)$", operation["name"])
            assert not other or other.group(1) == key[0].lower(), (operation["name"], key)


def test_init_writes_product_consumer_and_reject(variant):
    config = ok(variant)
    assert config.get("unmatched") == "reject"
    assert "default" in config["products"], config["products"]
    limit = config["products"]["default"].get("rate_limit")
    assert limit and limit["calls"] >= 1 and limit["renewal_period_s"] >= 1, limit
    consumers = config["consumers"]
    assert len(consumers) == 1, consumers
    assert consumers[0]["id"] == "first-consumer"
    assert consumers[0]["product"] == "default"
    assert consumers[0]["keys"] == [sha256_ref(variant.init.key)]


def test_key_printed_once_and_only_its_hash_written(variant, tmp_path):
    ok(variant)
    key = variant.init.key
    text = variant.init.path.read_text()
    assert key not in text
    assert key not in variant.init.result.stdout
    assert sha256_ref(key) in text
    # A fresh key each time.
    again = run_init(tmp_path, variant.openapi, *variant.flags)
    assert again.result.returncode == 0, again.result.stderr
    assert again.key != key


def test_init_output_passes_check_and_check_openapi_strict(variant):
    ok(variant)
    plain = check(variant.init.path)
    assert plain.returncode == 0, plain.stderr
    assert ": OK" in plain.stdout.splitlines()[0], plain.stdout
    strict = check(variant.init.path, "--openapi", str(variant.init.openapi_path), "--strict")
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert drift(strict) == []


# --- 2. the output in a real Envoy, with the key it printed ---------------------------------------

@pytest.fixture(scope="module")
def init_gateway(request, variant, workdir):
    config = ok(variant)
    server = request.getfixturevalue("backend" if variant.app == "sample" else "edge_backend")
    rendered = stack.render_envoy_config(config, listen_port=stack.free_port(),
                                         admin_port=stack.free_port(), backend_port=server.port)
    path = workdir / f"init-{variant.name}-validate.yaml"
    path.write_text(yaml.safe_dump(rendered))
    validated = stack.validate(path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "invalid configuration" not in validated.stdout + validated.stderr
    envoy = start_gateway(workdir, server, config, f"init-{variant.name}")
    yield envoy
    envoy.stop()
    log = envoy.log()
    assert "panicked" not in log
    assert variant.init.key not in log


def key_header(config: dict) -> str:
    return config.get("subscription_key", {}).get("header", "Ocp-Apim-Subscription-Key")


def test_key_reaches_the_handler_of_every_operation(variant, init_gateway):
    config = ok(variant)
    failures = []
    for operation in config["operations"]:
        method = operation["methods"][0]
        backend = backend_path(operation)
        function = variant.routes[(method, backend)]
        values = path_values(variant.openapi, method, backend)
        url = init_gateway.url + fill(operation["path_template"], values)
        where = f"{operation['name']}: {method} {url}"
        response = requests.request(method, url, headers={key_header(config): variant.init.key},
                                    timeout=10, **REQUEST_BODIES.get(function, {}))
        try:
            body = response.json()
        except ValueError:
            failures.append(f"{where}: {response.status_code}, not JSON: {response.text[:200]}")
            continue
        if isinstance(body, dict) and set(body) == TOLLGATE_ERROR_KEYS:
            failures.append(f"{where}: tollgate answered {response.status_code} {body}")
            continue
        received = body.get("received", {}) if isinstance(body, dict) else {}
        expected = (method, fill(backend, values))
        if (received.get("method"), received.get("path")) != expected or body.get("echo"):
            failures.append(f"{where}: backend saw {received}, expected {expected}")
        if variant.app == "edge" and body.get("handler") != function:
            failures.append(f"{where}: answered by {body.get('handler')}, not {function}")
        if response.status_code >= 400:
            failures.append(f"{where}: {response.status_code} from the backend: {body}")
    assert failures == []


def test_without_the_key_every_operation_is_refused(variant, init_gateway):
    config = ok(variant)
    for operation in config["operations"]:
        method = operation["methods"][0]
        values = path_values(variant.openapi, method, backend_path(operation))
        response = requests.request(
            method, init_gateway.url + fill(operation["path_template"], values), timeout=10)
        assert response.status_code == 401, (operation["name"], response.text)
        assert set(response.json()) == TOLLGATE_ERROR_KEYS


def test_routes_fastapi_hides_are_not_public(variant, init_gateway):
    config = ok(variant)
    hidden = "/svc/v2/debug" if variant.app == "edge" else "/status/200"
    url = init_gateway.url + expected_public(hidden, variant.backend_prefix,
                                             variant.public_prefix)
    response = requests.get(url, headers={key_header(config): variant.init.key}, timeout=10)
    assert response.status_code == 404, response.text
    assert response.json()["statusCode"] == 404


@pytest.mark.parametrize("order", ["as-written", "reversed"])
def test_literal_segment_wins_over_a_parameter_in_any_order(variant, init_gateway, workdir,
                                                             request, order):
    """GET /v2/orders/export reaches export_orders and /v2/orders/42 get_order, with init's
    order of operations and with it reversed (every parameter template then comes before the
    literal beside it)."""
    if variant.app != "edge":
        pytest.skip("the edge app's routes")
    config = ok(variant)
    envoy = init_gateway
    if order == "reversed":
        config = dict(config, operations=list(reversed(config["operations"])))
        names = [operation["name"] for operation in config["operations"]]
        assert names.index("get_order") < names.index("export_orders")
        envoy = start_gateway(workdir, request.getfixturevalue("edge_backend"), config,
                              f"init-{variant.name}-reversed")
    try:
        headers = {key_header(config): variant.init.key}
        base = envoy.url + expected_public("/svc/v2/orders", variant.backend_prefix,
                                           variant.public_prefix)
        export = requests.get(base + "/export", headers=headers, timeout=10)
        assert export.status_code == 200, export.text
        assert export.json()["handler"] == "export_orders", export.text
        order_42 = requests.get(base + "/42", headers=headers, timeout=10)
        assert order_42.status_code == 200, order_42.text
        assert order_42.json()["handler"] == "get_order", order_42.text
    finally:
        if envoy is not init_gateway:
            envoy.stop()
            assert "panicked" not in envoy.log()


# --- 3. the connector from init's output ----------------------------------------------------------

def test_connector_has_one_operation_per_fastapi_operation(variant, tmp_path):
    config = ok(variant)
    generated = ch.generate(tmp_path, config, variant.openapi)
    assert generated.ok, generated.stderr
    templates = {(operation["methods"][0], operation["path_template"]): operation
                 for operation in config["operations"]}
    base = generated.api.get("basePath", "/").rstrip("/")
    connector_operations = list(ch.operations(generated.api))
    assert len(connector_operations) == len(variant.routes), connector_operations
    reached = set()
    for method, path in connector_operations:
        public = base + path
        assert (method, public) in templates, (method, public, sorted(templates))
        reached.add((method, backend_path(templates[(method, public)])))
    assert reached == set(variant.routes)
    ids = [operation["operationId"] for operation in ch.operations(generated.api).values()]
    assert len(ids) == len(set(ids)), ids
    assert not generated.left_out_lines(), generated.stderr


# --- 4. drift -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edge_init(tmp_path_factory) -> Init:
    init = run_init(tmp_path_factory.mktemp("init-edge-drift"), edge_openapi(),
                    "--backend-prefix", "/svc")
    assert init.result.returncode == 0, init.result.stderr
    return init


def test_a_route_added_to_fastapi_is_drift(edge_init, tmp_path):
    extra = tmp_path / "openapi-extra.json"
    extra.write_text(json.dumps(edge_openapi(extra=True)))
    line = f"not exposed: {EXTRA_ROUTE[0]} {EXTRA_ROUTE[1]}"
    strict = check(edge_init.path, "--openapi", str(extra), "--strict")
    assert strict.returncode != 0, strict.stdout
    assert drift(strict) == [line], strict.stdout
    lenient = check(edge_init.path, "--openapi", str(extra))
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert drift(lenient) == [line]


def test_a_route_removed_from_fastapi_is_drift(tmp_path):
    init = run_init(tmp_path, edge_openapi(extra=True), "--backend-prefix", "/svc")
    assert init.result.returncode == 0, init.result.stderr
    plain = tmp_path / "openapi-plain.json"
    plain.write_text(json.dumps(edge_openapi()))
    strict = check(init.path, "--openapi", str(plain), "--strict")
    assert strict.returncode != 0
    assert drift(strict) == ["reaches nothing: POST /v2/orders/{order_id}/refund"], strict.stdout


def test_a_hand_added_operation_fastapi_lacks_reaches_nothing(edge_init, tmp_path):
    config = edge_init.config
    config["operations"].append({"name": "legacy_report", "methods": ["GET"],
                                 "path_template": "/legacy/{report_id}",
                                 "rewrite": "/svc/legacy/{report_id}",
                                 "auth": "subscription_key"})
    config["operations"].append({"name": "old_status", "methods": ["GET"], "path": "/old",
                                 "rewrite": "/svc/old", "auth": "subscription_key"})
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(config, indent=1))
    assert check(edited).returncode == 0
    lenient = check(edited, "--openapi", str(edge_init.openapi_path))
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert sorted(drift(lenient)) == ["reaches nothing: GET /legacy/{report_id}",
                                      "reaches nothing: GET /old"], lenient.stdout
    strict = check(edited, "--openapi", str(edge_init.openapi_path), "--strict")
    assert strict.returncode != 0


def test_an_operation_removed_by_hand_is_not_exposed(edge_init, tmp_path):
    config = edge_init.config
    config["operations"] = [operation for operation in config["operations"]
                            if operation["name"] != "delete_order"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(config, indent=1))
    strict = check(edited, "--openapi", str(edge_init.openapi_path), "--strict")
    assert strict.returncode != 0
    assert drift(strict) == ["not exposed: DELETE /svc/v2/orders/{order_id}"], strict.stdout


# --- 5. the rest of init's contract ---------------------------------------------------------------

def test_init_never_overwrites(tmp_path):
    existing = tmp_path / "tollgate.json"
    existing.write_text('{"mine": true}\n')
    result = run_init(tmp_path, edge_openapi())
    assert result.result.returncode != 0
    assert existing.read_text() == '{"mine": true}\n'
    assert result.result.stderr.strip()
    assert not KEY_LINE.search(result.result.stderr), "a key printed for a file not written"


def test_init_writes_tollgate_json_in_the_working_directory(tmp_path):
    (tmp_path / "openapi.json").write_text(json.dumps(edge_openapi()))
    result = subprocess.run([str(stack.CLI), "init", "--openapi", "openapi.json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "tollgate.json").read_text())
    assert len(config["operations"]) == len(fastapi_routes(edge_module().service, "/svc"))


@pytest.mark.parametrize("auth", ["jwt", "either"])
def test_other_auth_passes_check(tmp_path, auth):
    init = run_init(tmp_path, edge_openapi(), "--backend-prefix", "/svc", "--auth", auth)
    assert init.result.returncode == 0, init.result.stderr
    config = init.config
    assert {operation["auth"] for operation in config["operations"]} == {auth}
    plain = check(init.path)
    assert plain.returncode == 0, plain.stderr
    strict = check(init.path, "--openapi", str(init.openapi_path), "--strict")
    assert strict.returncode == 0, strict.stdout + strict.stderr


def test_a_path_that_cannot_be_a_template_is_skipped_and_reported(tmp_path):
    """`/v2/reports/{report_id}.csv` (a parameter and a literal in one segment) cannot be a
    template: skipped with a line on stderr, everything else written, and `check --openapi`
    reports it as not exposed."""
    openapi = edge_openapi()
    openapi["paths"]["/v2/reports/{report_id}.csv"] = {"get": {
        "operationId": "get_report_csv_v2_reports__report_id__csv_get",
        "parameters": [{"name": "report_id", "in": "path", "required": True,
                        "schema": {"type": "string", "title": "Report Id"}}],
        "responses": {"200": {"description": "Successful Response",
                              "content": {"application/json": {"schema": {}}}}},
    }}
    init = run_init(tmp_path, openapi, "--backend-prefix", "/svc")
    assert init.result.returncode == 0, init.result.stderr
    skipped = [line for line in init.result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "/v2/reports/{report_id}.csv" in skipped[0], init.result.stderr
    routes = fastapi_routes(edge_module().service, "/svc")
    assert {(operation["methods"][0], backend_path(operation))
            for operation in init.config["operations"]} == set(routes)
    assert check(init.path).returncode == 0
    lenient = check(init.path, "--openapi", str(init.openapi_path))
    assert lenient.returncode == 0
    assert drift(lenient) == ["not exposed: GET /svc/v2/reports/{report_id}.csv"], lenient.stdout


@pytest.mark.parametrize("openapi_text", [
    pytest.param("{ not json", id="not-json"),
    pytest.param(json.dumps({"swagger": "2.0", "info": {}, "paths": {}}), id="swagger-2.0"),
])
def test_init_refuses_what_is_not_openapi_3(tmp_path, openapi_text):
    init = run_init(tmp_path, openapi_text)
    assert init.result.returncode != 0
    assert init.result.stderr.strip() and "panicked" not in init.result.stderr
    assert not init.path.exists()


def test_init_refuses_an_unknown_auth(tmp_path):
    init = run_init(tmp_path, edge_openapi(), "--auth", "sometimes")
    assert init.result.returncode != 0
    assert not init.path.exists()
