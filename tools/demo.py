"""`make run` / `make stop`: the demo stack on 127.0.0.1 with freshly made keys.

Two Envoys with the filter (two replicas, as on AKS) in front of the sample FastAPI backend,
sharing one count of global limits through tollgate-rls on a throwaway Redis.

The operations are made by `tollgate init` from the sample backend's OpenAPI on every start
(one URL template per FastAPI operation, so the gateway exposes exactly the documented API),
then given the demo's policy (products, header edits) from the reference `envoy/envoy.yaml`.
Keys are made with `tollgate new-key` on every start and printed once; only their hashes are
written into `.run/envoy*.yaml`, the reference with the demo keys swapped in. The gateways
serve HTTPS only, with a self-signed certificate made on every start (`.run/tls/`), which the
printed curls trust with `--cacert`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
import yaml

import stack

# Overridable so the integration tests can run the demo beside a developer's own.
RUN = Path(os.environ.get("TOLLGATE_DEMO_DIR", stack.REPO / ".run"))
PIDS = RUN / "pids"


def port(variable: str, reference: int) -> int:
    return int(os.environ.get(variable, reference))


def new_key() -> tuple[str, str]:
    result = stack.tollgate_cli("new-key")
    if result.returncode != 0:
        sys.exit(f"tollgate new-key failed: {result.stderr}")
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    return fields["key"].strip(), fields["hash"].strip()


def stop() -> None:
    """Stops what `start` recorded: Envoys through their admin API, the other processes (each
    in its own session) by process group."""
    if not PIDS.exists():
        return
    for line in PIDS.read_text().splitlines():
        kind, _, target = line.partition(" ")
        if kind == "envoy":
            stack.quit_envoy(target)
        elif kind == "process":
            try:
                os.killpg(int(target), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
    PIDS.unlink()
    print("demo stopped")


# What `tollgate init` gets for the sample backend: its API lives under /api/v1 and is public
# at the root.
BACKEND_PREFIX = "/api/v1"
# The parts of an operation `tollgate init` makes; the rest is the demo's policy.
INIT_KEYS = ("name", "methods", "path_template", "rewrite")


def backend_openapi() -> dict:
    """The sample backend's OpenAPI, as FastAPI generates it (the app is imported, no server
    runs)."""
    # Loaded from its file under its own name: the backend is not a package, and other `app`
    # modules (the tests') must not stand in for it.
    spec = importlib.util.spec_from_file_location("tollgate_sample_backend",
                                                  stack.REPO / "backend" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app.openapi()


def init_operations(openapi: dict) -> list[dict]:
    """The operations `tollgate init` makes from `openapi` (its key is thrown away)."""
    with tempfile.TemporaryDirectory() as tmp:
        source, made = Path(tmp) / "openapi.json", Path(tmp) / "tollgate.json"
        source.write_text(json.dumps(openapi))
        result = stack.tollgate_cli("init", "--openapi", str(source),
                                    "--backend-prefix", BACKEND_PREFIX, "--out", str(made))
        if result.returncode != 0:
            sys.exit(f"tollgate init failed: {result.stderr}")
        return json.loads(made.read_text())["operations"]


# How a Power Automate flow sends an invoice (PascalCase, no currency), reshaped by tollgate into
# the backend's Invoice model, with the caller filed as `submitted_by`: the operation the demo
# shows a body transform with. Added here, not in envoy/envoy.yaml (whose operations are exactly
# what `tollgate init` makes); it reaches the same handler as `create_invoice`.
FLOW_INVOICE_OPERATION = {
    "name": "submit_flow_invoice", "methods": ["POST"], "path_template": "/flow/invoices",
    "rewrite": "/api/v1/invoices", "auth": "subscription_key",
    "request_headers": {"set": {"x-consumer-id": "{consumer}"}},
    "request_body": {
        "transform": "{invoice_id: body.InvoiceNumber, amount: body.Total, "
                     "currency: body.Currency || 'EUR', due_date: body.DueDate, "
                     "po_number: body.PurchaseOrder, submitted_by: consumer}",
        "max_bytes": 65536,
        "public_schema": {
            "type": "object", "required": ["InvoiceNumber", "Total", "DueDate"],
            "properties": {
                "InvoiceNumber": {"type": "string", "title": "Invoice number"},
                "Total": {"type": "string", "title": "Total", "description": "e.g. 12.50"},
                "Currency": {"type": "string", "title": "Currency", "description": "EUR when left out"},
                "DueDate": {"type": "string", "format": "date", "title": "Due date"},
                "PurchaseOrder": {"type": "string", "title": "Purchase order"}}}},
    "response_headers": {"remove": ["x-backend"]},
}
FLOW_BODY = '{"InvoiceNumber": "INV-7", "Total": "99.90", "DueDate": "2026-12-31"}'


def demo_plugin(reference: dict | None = None) -> dict:
    """The demo's plugin configuration: the operations `tollgate init` makes from the backend's
    OpenAPI, each given the policy of the reference operation of the same name (auth,
    products, header edits); the rest of the reference as it is. An operation the reference
    does not know keeps init's defaults (subscription key, any product)."""
    reference = reference or stack.plugin_configuration(stack.load_reference())
    policy = {op["name"]: op for op in reference["operations"]}
    operations = []
    for made in init_operations(backend_openapi()):
        own = policy.get(made["name"], {})
        operations.append(made | {k: v for k, v in own.items() if k not in INIT_KEYS})
    # A 5xx never shows the backend's text (a traceback, a host name) to a flow's run history.
    return reference | {"operations": [*operations, FLOW_INVOICE_OPERATION],
                        "mask_backend_errors": True}


def fresh_keys(plugin: dict) -> dict[str, list[str]]:
    """Replaces every consumer's key hashes with those of new keys; returns the keys."""
    keys = {}
    for consumer in plugin["consumers"]:
        made = [new_key() for _ in consumer["keys"]]
        consumer["keys"] = [digest for _, digest in made]
        keys[consumer["id"]] = [key for key, _ in made]
    return keys


DEMO_BODY = '{"invoice_id": "INV-1", "amount": "12.50", "currency": "EUR", "due_date": "2026-12-31"}'


def shown(path: Path) -> str:
    """A path as the printed commands use it: relative to the repository when inside it (the
    curls are meant to be run from there, as `-F file=@README.md` is)."""
    return str(path.relative_to(stack.REPO)) if path.is_relative_to(stack.REPO) else str(path)


def print_keys_and_curls(keys: dict[str, list[str]], urls: list[str], config: str,
                         cacert: Path) -> None:
    flow_primary, flow_secondary = keys["invoice-flow"]
    portal = keys["contoso-portal"][0]
    partner = keys["partner-app"][0]
    url = urls[0]
    # Every curl trusts the demo's own certificate, and nothing else, for the gateway.
    curl = f"curl --cacert {shown(cacert)}"
    print(f"""demo keys (made just now; only their hashes are in {config}):
  invoice-flow   (product starter)    primary   {flow_primary}
                                      secondary {flow_secondary}
  contoso-portal (product unlimited)  primary   {portal}
  partner-app    (product partner)    primary   {partner}

try:
  {curl} -i -X POST {url}/validate \\
       -H 'Ocp-Apim-Subscription-Key: {flow_primary}' \\
       -H 'Content-Type: application/json' \\
       -d '{DEMO_BODY}'
  {curl} -i -X POST {url}/validate                       # 401, missing key
  {curl} -s '{url}/invoices?status=paid&limit=2' -H 'Ocp-Apim-Subscription-Key: {portal}'
  {curl} -s {url}/invoices/INV-1 -H 'Ocp-Apim-Subscription-Key: {portal}'
  {curl} -si {url}/invoices/INV-2 -H 'Ocp-Apim-Subscription-Key: {portal}' | grep -i '^x-cache'   # MISS
  {curl} -si {url}/invoices/INV-2 -H 'Ocp-Apim-Subscription-Key: {portal}' | grep -i -e '^x-cache' -e '^age'   # HIT: cached 30 s per consumer
  {curl} -s -X POST {url}/invoices/INV-1/attachments -H 'Ocp-Apim-Subscription-Key: {portal}' \\
       -F file=@README.md -F kind=other
  {curl} -i -X POST {url}/invoices/INV-1/attachments -H 'Ocp-Apim-Subscription-Key: {flow_primary}' \\
       -F file=@README.md                              # 403, starter may not upload
  {curl} -i {url}/invoices/INV-1/history -H 'Ocp-Apim-Subscription-Key: {portal}'   # 404, not in the API
  {curl} -i -X OPTIONS {url}/validate -H 'Origin: https://make.powerautomate.com' \\
       -H 'Access-Control-Request-Method: POST' \\
       -H 'Access-Control-Request-Headers: content-type, ocp-apim-subscription-key'   # 200, a browser's CORS preflight: no key
  # a Power Automate flow's invoice, reshaped by tollgate into the backend's model (201):
  {curl} -s -X POST {url}/flow/invoices -H 'Ocp-Apim-Subscription-Key: {portal}' \\
       -H 'Content-Type: application/json' -d '{FLOW_BODY}'
""")
    if len(urls) < 2:
        return
    gateways = " ".join(urls * 6)
    print(f"""partner-app has a global quota of 10 calls a day, shared by every gateway:
  for url in {gateways}; do
    {curl} -s -o /dev/null -w '%{{http_code}} ' -X POST $url/validate \\
         -H 'Ocp-Apim-Subscription-Key: {partner}' -H 'Content-Type: application/json' \\
         -d '{DEMO_BODY}'
  done; echo      # 200 ten times across both gateways, then 403 from either
""")


def compose_config() -> None:
    """.run/envoy-compose.yaml (envoy/envoy-compose.yaml with fresh keys), a throw-away
    certificate in .run/compose-tls/ (docker-compose.yml mounts it where that config reads it)
    and a .env that points docker compose at the config."""
    RUN.mkdir(exist_ok=True)
    # Readable by all: the Envoy image drops to its own user (uid 101), which owns none of the
    # host's files. The key guards a certificate nobody else trusts, for 127.0.0.1 only.
    cert, _ = stack.make_certificate(RUN / "compose-tls", key_mode=0o644)
    bootstrap = yaml.safe_load((stack.REPO / "envoy" / "envoy-compose.yaml").read_text())
    plugin = demo_plugin(stack.plugin_configuration(bootstrap))
    keys = fresh_keys(plugin)
    stack.tollgate_filter(bootstrap)["configuration"]["value"] = json.dumps(plugin, indent=1)
    target = RUN / "envoy-compose.yaml"
    target.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    (stack.REPO / ".env").write_text(f"TOLLGATE_ENVOY_CONFIG=./{target.relative_to(stack.REPO)}\n")
    print(f"wrote {target} and .env; now: docker compose up\n")
    print_keys_and_curls(keys, ["https://127.0.0.1:10000"], str(target.relative_to(stack.REPO)),
                         cert)


def start() -> None:
    stop()
    RUN.mkdir(exist_ok=True)
    reference = stack.load_reference()
    plugin = demo_plugin(stack.plugin_configuration(reference))
    keys = fresh_keys(plugin)
    # A new certificate every start: nothing outlives the demo that trusted it.
    tls = stack.make_certificate(RUN / "tls")

    ports = reference["static_resources"]["listeners"][0]["address"]["socket_address"]
    admin = reference["admin"]["address"]["socket_address"]
    backend_cluster = reference["static_resources"]["clusters"][0]
    backend_address = backend_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    backend_port = backend_address["endpoint"]["address"]["socket_address"]["port_value"]
    rls_cluster = stack.cluster_named(reference, stack.RLS_CLUSTER)
    rls_address = rls_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    rls_port = rls_address["endpoint"]["address"]["socket_address"]["port_value"]

    backend_port = port("TOLLGATE_DEMO_BACKEND_PORT", backend_port)
    rls_port = port("TOLLGATE_DEMO_RLS_PORT", rls_port)
    listen = [port("TOLLGATE_DEMO_PORT", ports["port_value"]),
              port("TOLLGATE_DEMO_PORT_B", ports["port_value"] + 1)]
    admins = [port("TOLLGATE_DEMO_ADMIN_PORT", admin["port_value"]),
              port("TOLLGATE_DEMO_ADMIN_PORT_B", admin["port_value"] + 1)]

    started: list[str] = []

    def record(line: str):
        started.append(line)
        PIDS.write_text("\n".join(started) + "\n")

    try:
        redis = stack.Redis(RUN, port=port("TOLLGATE_DEMO_REDIS_PORT", 6390), detach=True)
        record(f"process {redis.process.pid}")
        rls = stack.RateLimitService(RUN, redis.url, port=rls_port, detach=True)
        record(f"process {rls.process.pid}")
        backend = stack.Backend(RUN, port=backend_port, detach=True)
        record(f"process {backend.process.pid}")
        envoys = []
        for name, listen_port, admin_port in zip(("envoy", "envoy-b"), listen, admins):
            envoy_config = stack.render_envoy_config(
                plugin, listen_port=listen_port, admin_port=admin_port,
                backend_port=backend_port, rls_port=rls_port, base=reference, tls=tls)
            envoys.append(stack.Envoy(RUN, envoy_config, name=name, concurrency=2, detach=True))
            record(f"envoy {envoys[-1].admin}")
    except RuntimeError:
        stop()
        raise

    print(f"""
tollgate demo is running (logs in {RUN}; stop with `make stop`)
  gateway A  {envoys[0].url}   gateway B  {envoys[1].url}   ->  FastAPI backend http://127.0.0.1:{backend_port}
  global limits: tollgate-rls 127.0.0.1:{rls_port} on Redis {redis.url}
  admin      {envoys[0].admin}/stats/prometheus   {envoys[1].admin}/stats/prometheus
""")
    print_keys_and_curls(keys, [envoy.url for envoy in envoys], ".run/envoy.yaml", tls[0])


def connector_inputs() -> None:
    """What `make connector` hands `tollgate connector`, in the directory given (default
    .run/connector): tollgate.json, the demo's plugin configuration (`demo_plugin`), and
    fastapi-openapi.json, the sample backend's OpenAPI as FastAPI generates it. The key
    hashes go along unchanged: the connector never copies them, and nobody holds their
    keys."""
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else RUN / "connector"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tollgate.json").write_text(json.dumps(demo_plugin(), indent=2) + "\n")
    (out / "fastapi-openapi.json").write_text(json.dumps(backend_openapi(), indent=2) + "\n")
    print(f"wrote {out / 'tollgate.json'} and {out / 'fastapi-openapi.json'}")


if __name__ == "__main__":
    commands = {"start": start, "stop": stop, "compose-config": compose_config,
                "connector-inputs": connector_inputs}
    commands[sys.argv[1] if len(sys.argv) > 1 else "start"]()
