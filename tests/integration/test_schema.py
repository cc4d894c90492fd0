"""The configuration's JSON Schema (docs/tollgate.schema.json, printed by `tollgate schema` from
the Rust types; a Rust test keeps the committed copy equal to it).

- Every configuration the repository ships validates against it: the plugin configurations of
  envoy/*.yaml, the k8s ConfigMap and the Istio WasmPlugin (shipped.py), the demo's (`make run`,
  `make connector`), what `tollgate init` writes, and every fenced block of docs/*.md and
  README.md whose info string is `json tollgate` (a complete configuration), which must pass
  `tollgate check` too.
- Known-bad configurations are refused by both the schema and `tollgate check`.
- Rules the schema cannot say (a product that does not exist, a duplicate key, a template's
  unknown placeholder...) are accepted by the schema and refused by `tollgate check`: the split
  docs/configuration.md documents ("What the schema checks and what only `tollgate check`
  checks").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

import demo
import stack
from shipped import REPO, plugin_configurations

SCHEMA_FILE = REPO / "docs" / "tollgate.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# The info string of a fenced block that holds a complete tollgate configuration.
MARKER = "json tollgate"
# ... and of one that holds part of one: top-level members (`"cors": {...}, "operations": [...]`)
# or one operation object; it is checked inside a small complete configuration (`completed`).
PART_MARKER = "json tollgate-part"


def schema_errors(config) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in VALIDATOR.iter_errors(config)]


def every_error_path(errors) -> set[str]:
    """Where each error and each error under it (a branch of anyOf, oneOf) points."""
    return {path for error in errors
            for path in (error.json_path, *every_error_path(error.context))}


def check(tmp_path: Path, text: str, name: str = "plugin.json"):
    path = tmp_path / name
    path.write_text(text)
    return stack.tollgate_cli("check", str(path))


def marked_blocks(path: Path, root: Path = REPO,
                  marker: str = MARKER) -> list[tuple[str, str]]:
    """(file:line, text) of every fenced code block of a Markdown file whose info string is
    exactly `json tollgate`. Fences are CommonMark's: ``` or ~~~, three or more, indented at most
    three spaces; a block ends at a fence of the same character at least as long, with no info
    string (or at the end of the file)."""
    found = []
    lines = path.read_text().splitlines()
    opening = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
    index = 0
    while index < len(lines):
        match = opening.match(lines[index])
        if not match or (match.group(1)[0] == "`" and "`" in match.group(2)):
            index += 1
            continue
        fence, info = match.group(1), match.group(2).strip()
        start = index
        index += 1
        body = []
        while index < len(lines):
            closing = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[index])
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                break
            body.append(lines[index])
            index += 1
        index += 1
        if info == marker:
            found.append((f"{path.relative_to(root)}:{start + 1}", "\n".join(body) + "\n"))
    return found


def documented_configurations() -> list[tuple[str, str]]:
    found = []
    for path in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        found.extend(marked_blocks(path))
    return found


DOCUMENTED = documented_configurations()
DOCUMENTED_PARTS = [found for path in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
                    for found in marked_blocks(path, marker=PART_MARKER)]
PART_BASE = {
    "products": {"default": {}},
    "consumers": [{"id": "invoice-flow", "product": "default",
                   "keys": ["sha256:" + "ab" * 32]}],
    "operations": [{"name": "validate", "methods": ["POST"], "path": "/validate"}],
}


def completed(text: str) -> dict:
    """A documented part inside a small complete configuration: one operation object joins
    the base's operations; top-level members replace the base's, maps (products) merged."""
    part = json.loads(text) if text.lstrip().startswith("{") else None
    if part is not None and "name" in part:
        return {**PART_BASE, "operations": [*PART_BASE["operations"], part]}
    members = part if part is not None else json.loads("{" + text + "}")
    config = dict(PART_BASE)
    for name, value in members.items():
        if isinstance(value, dict) and isinstance(config.get(name), dict):
            config[name] = {**config[name], **value}
        else:
            config[name] = value
    return config


def test_schema_is_a_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- what the repository ships ----------------------------------------------------------------

@pytest.mark.parametrize("where,plugin", plugin_configurations(),
                         ids=[where for where, _ in plugin_configurations()])
def test_every_shipped_plugin_configuration_validates(where, plugin):
    assert schema_errors(json.loads(plugin)) == []


def test_the_demo_configuration_validates(tmp_path):
    """`make run` and `make connector` build theirs from init's operations and envoy/envoy.yaml."""
    plugin = demo.demo_plugin()
    assert schema_errors(plugin) == []
    result = check(tmp_path, json.dumps(plugin))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("auth", ["subscription_key", "jwt", "either"])
def test_what_tollgate_init_writes_validates(tmp_path, auth):
    openapi = tmp_path / "openapi.json"
    openapi.write_text(json.dumps(demo.backend_openapi()))
    out = tmp_path / "tollgate.json"
    result = stack.tollgate_cli("init", "--openapi", str(openapi), "--backend-prefix",
                                demo.BACKEND_PREFIX, "--auth", auth, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert schema_errors(json.loads(out.read_text())) == []


def test_the_docs_hold_complete_configurations():
    """The collector finds the marked blocks (a typo in it would silently check nothing)."""
    assert DOCUMENTED, "no ```json tollgate block in docs/*.md or README.md"


@pytest.mark.parametrize("where,text", DOCUMENTED, ids=[where for where, _ in DOCUMENTED])
def test_every_documented_configuration_validates_and_passes_check(tmp_path, where, text):
    assert schema_errors(json.loads(text)) == [], where
    result = check(tmp_path, text)
    assert result.returncode == 0, f"{where}: {result.stderr}"


def test_the_docs_hold_parts_of_configurations():
    assert len(DOCUMENTED_PARTS) >= 5, "no ```json tollgate-part blocks found in docs/*.md"


@pytest.mark.parametrize("where,text", DOCUMENTED_PARTS, ids=[where for where, _ in DOCUMENTED_PARTS])
def test_every_documented_part_validates_and_passes_check_in_a_configuration(tmp_path, where,
                                                                             text):
    config = completed(text)
    assert schema_errors(config) == [], where
    result = check(tmp_path, json.dumps(config))
    assert result.returncode == 0, f"{where}: {result.stderr}"


def test_a_part_is_completed_as_documented():
    operation = completed('{ "name": "x", "path": "/x" }')
    assert [op["name"] for op in operation["operations"]] == ["validate", "x"]
    members = completed('"products": { "p": {} }, "unmatched": "pass"')
    assert members["products"] == {"default": {}, "p": {}} and members["unmatched"] == "pass"
    # A broken part fails: an unknown member reaches the schema and the check.
    assert schema_errors(completed('"unknown_member": 1')) != []


def test_the_marker_is_the_whole_info_string(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```json\n{}\n```\n\n```json tollgate\n{\"a\": 1}\n```\n\n"
                    "````md\n```json tollgate\n{\"inside\": 1}\n```\n````\n\n"
                    "~~~json tollgate\n[]\n~~~\n\n```json tollgate-ish\n{}\n```\n")
    assert marked_blocks(page, root=tmp_path) == [("page.md:5", '{"a": 1}\n'),
                                                  ("page.md:15", "[]\n")]


# --- refused by both ---------------------------------------------------------------------------

KEY_A = "sha256:" + "a1" * 32
KEY_B = "sha256:" + "b2" * 32


def base() -> dict:
    """A valid configuration touching every section the cases below edit."""
    return {
        "subscription_key": {"header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"},
        "jwt": {
            "issuers": ["https://login.microsoftonline.com/tenant/v2.0"],
            "audiences": ["api://invoices"],
            "openid_config": {"url": "https://login.microsoftonline.com/tenant/v2.0/"
                                     ".well-known/openid-configuration",
                              "cluster": "entra_id"},
            "required_claims": [{"name": "roles", "any_of": ["Invoices.Read"]}],
            "claims_to_headers": {"oid": "x-user-oid"},
        },
        "products": {
            "starter": {"rate_limit": {"calls": 5, "renewal_period_s": 60},
                        "quota": {"calls": 1000, "renewal_period_s": 86400}},
            "partner": {"quota": {"calls": 50000, "renewal_period_s": 2592000,
                                  "scope": "global"}},
        },
        "global_limits": {"cluster": "tollgate_rls", "timeout_ms": 50, "failure_mode": "local"},
        "consumers": [
            {"id": "invoice-flow", "product": "starter", "keys": [KEY_A]},
            {"id": "portal", "product": "partner", "jwt_client_ids": ["11111111-2222"]},
        ],
        "operations": [
            {"name": "validate", "methods": ["POST"], "path": "/validate",
             "auth": "either", "products": ["starter", "partner"], "rewrite": "/api/v1/validate",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}, "remove": ["x-debug"]},
             "request_body": {"transform": "{invoice_id: body.InvoiceNumber}",
                              "max_bytes": 65536}},
            {"name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{invoice_id}",
             "rewrite": "/api/v1/invoices/{invoice_id}",
             "cache": {"ttl_s": 30, "vary_by_query": ["expand"]},
             "ip_filter": {"allow": ["10.0.0.0/8", {"from": "192.0.2.1", "to": "192.0.2.9"}]}},
            {"name": "health", "methods": ["GET"], "path": "/healthz", "auth": "none",
             "cors": None, "ip_filter": None, "max_request_body_bytes": None},
            {"name": "admin", "path_prefix": "/admin", "products": ["partner"]},
        ],
        "unmatched": "reject",
        "ip_filter": {"forbid": ["203.0.113.0/24"]},
        "cors": {"allowed_origins": ["https://make.powerautomate.com"],
                 "allowed_headers": ["content-type"], "max_age_s": 600},
        "rate_limit_headers": {"limit": "x-ratelimit-limit"},
        "max_request_body_bytes": 1048576,
        "mask_backend_errors": True,
        "cache_limits": {"max_bytes": 16777216},
    }


def edited(edit) -> dict:
    config = base()
    edit(config)
    return config


def op(config: dict, index: int) -> dict:
    return config["operations"][index]


# (name, edit, what `tollgate check` says: the path of the fault, then the start of its message)
REFUSED_BY_BOTH = [
    ("unknown key at the top level",
     lambda c: c.update(timeout=5), "timeout: unknown field `timeout`"),
    ("unknown key in an operation",
     lambda c: op(c, 0).update(timout=5), "operations[0].timout: unknown field `timout`"),
    ("unknown key in a nested section",
     lambda c: c["cors"].update(max_age=600), "cors.max_age: unknown field `max_age`"),
    ("$schema in the file",
     lambda c: c.update({"$schema": "./tollgate.schema.json"}), "$schema: unknown field `$schema`"),
    ("operations is an object",
     lambda c: c.update(operations={"validate": {}}), "operations: invalid type: map"),
    ("methods is a string",
     lambda c: op(c, 0).update(methods="POST"), "operations[0].methods: invalid type: string"),
    ("a key that is no sha256 hash",
     lambda c: c["consumers"][0].update(keys=["my-secret-key"]),
     "consumers[0].keys[0]: must be 'sha256:'"),
    ("a key hash in upper case",
     lambda c: c["consumers"][0].update(keys=[KEY_A.upper().replace("SHA256", "sha256")]),
     "consumers[0].keys[0]: must be 'sha256:' followed by 64 lowercase hex digits (0-9, a-f)"),
    ("an empty key list",
     lambda c: c["consumers"][0].update(keys=[]), "consumers[0].keys: must not be empty"),
    ("a consumer without credentials",
     lambda c: c["consumers"][0].pop("keys"), "consumers[0]: needs at least one of"),
    ("no operations",
     lambda c: c.update(operations=[]), "operations: must not be empty"),
    ("renewal_period_s over a year",
     lambda c: c["products"]["starter"]["quota"].update(renewal_period_s=31536001),
     "products.starter.quota.renewal_period_s: must be at most 31536000"),
    ("calls 0",
     lambda c: c["products"]["starter"]["rate_limit"].update(calls=0),
     "products.starter.rate_limit.calls: must be at least 1"),
    ("a negative number",
     lambda c: op(c, 1)["cache"].update(ttl_s=-5),
     "operations[1].cache.ttl_s: expected a whole number of at least 0, got -5"),
    ("a fractional number",
     lambda c: c["products"]["starter"]["rate_limit"].update(calls=5.5),
     "products.starter.rate_limit.calls: expected a whole number of at least 0, got 5.5"),
    ("an unknown auth",
     lambda c: op(c, 0).update(auth="api_key"), "operations[0].auth: unknown variant `api_key`"),
    ("an unknown scope",
     lambda c: c["products"]["starter"]["quota"].update(scope="cluster"),
     "products.starter.quota.scope: unknown variant `cluster`"),
    ("both path and path_prefix",
     lambda c: op(c, 0).update(path_prefix="/v"),
     "operations[0]: give one of 'path', 'path_prefix' or 'path_template', not several"),
    ("no path at all",
     lambda c: op(c, 0).pop("path"),
     "operations[0]: needs one of 'path', 'path_prefix' or 'path_template'"),
    ("a path without its leading slash",
     lambda c: op(c, 0).update(path="validate"), "operations[0].path: must start with '/'"),
    ("an ip range without its end",
     lambda c: op(c, 1)["ip_filter"]["allow"].append({"from": "192.0.2.20"}),
     "operations[1].ip_filter.allow[2]: missing field `to`"),
    ("an ip entry that is a number",
     lambda c: c["ip_filter"]["forbid"].append(42),
     "ip_filter.forbid[1]: must be an IP address, a CIDR prefix or"),
    ("both allow and forbid",
     lambda c: c["ip_filter"].update(allow=["10.0.0.1"]),
     "ip_filter: give one of 'allow' or 'forbid', not both"),
    ("cors of the wrong type",
     lambda c: c.update(cors="*"), "cors: invalid type: string"),
    ("cache ttl 0",
     lambda c: op(c, 1)["cache"].update(ttl_s=0),
     "operations[1].cache.ttl_s: must be between 1 and 86400"),
    ("the none algorithm",
     lambda c: c["jwt"].update(algorithms=["RS256", "none"]),
     "jwt.algorithms[1]: 'none' is never allowed"),
    ("rate_limit_headers neither none nor names",
     lambda c: c.update(rate_limit_headers="off"),
     "rate_limit_headers: must be \"none\" or an object"),
    ("two remote key sources",
     lambda c: c["jwt"].update(jwks_uri={"url": "https://idp.example/keys", "cluster": "idp"}),
     "jwt: give one of 'openid_config' or 'jwks_uri', not both"),
    ("a header name with a space",
     lambda c: op(c, 0)["request_headers"]["set"].update({"x consumer": "{consumer}"}),
     "operations[0].request_headers.set.x consumer: \"x consumer\" is not a valid header name"),
]


@pytest.mark.parametrize("name,edit,message", REFUSED_BY_BOTH, ids=[c[0] for c in REFUSED_BY_BOTH])
def test_refused_by_the_schema_and_by_tollgate_check(tmp_path, name, edit, message):
    config = edited(edit)
    result = check(tmp_path, json.dumps(config))
    assert result.returncode == 1, result.stdout
    assert message in result.stderr, result.stderr
    # The schema finds the fault where the check does, or in the object that holds it (an
    # unknown key, a missing one, a rule across keys).
    fault = "$." + message.split(": ", 1)[0]
    holder = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", fault)
    found = every_error_path(VALIDATOR.iter_errors(config))
    assert fault in found or holder in found, (fault, schema_errors(config))


def test_the_base_of_the_cases_is_valid(tmp_path):
    """Each case breaks exactly one rule of a configuration that is otherwise valid."""
    assert schema_errors(base()) == []
    result = check(tmp_path, json.dumps(base()))
    assert result.returncode == 0, result.stderr


# --- accepted by the schema, refused by `tollgate check` ---------------------------------------

def duplicate_json_key(config: dict) -> str:
    text = json.dumps(config)
    starter = json.dumps({"starter": config["products"]["starter"]})[1:-1]
    return text.replace(starter, starter + ", " + '"starter": {}', 1)


# (name, edit, what `tollgate check` says). An edit returning text is the file as written.
ONLY_CHECK_REFUSES = [
    ("a product that does not exist",
     lambda c: c["consumers"][0].update(product="gold"),
     "consumers[0].product: unknown product 'gold'"),
    ("a duplicate consumer id",
     lambda c: c["consumers"][1].update(id="invoice-flow"),
     "consumers[1].id: duplicate consumer id 'invoice-flow'"),
    ("one key held by two consumers",
     lambda c: c["consumers"][1].update(keys=[KEY_A]),
     "consumers[1].keys[0]: duplicate key, already held by consumer 'invoice-flow'"),
    ("a duplicate JSON key",
     duplicate_json_key, "products.starter: duplicate key 'starter'"),
    ("host bits in a CIDR prefix",
     lambda c: c["ip_filter"].update(forbid=["10.0.0.1/8"]),
     "ip_filter.forbid[0]: host bits set in 10.0.0.1/8"),
    ("an address that is not one",
     lambda c: c["ip_filter"].update(forbid=["10.0.0.256"]),
     "ip_filter.forbid[0]: \"10.0.0.256\" is not an IP address"),
    ("a template's unknown placeholder",
     lambda c: op(c, 0)["request_headers"]["set"].update({"x-user": "{user}"}),
     "operations[0].request_headers.set.x-user: unknown placeholder {user}"),
    ("a global limit without global_limits",
     lambda c: c.pop("global_limits"),
     "products.partner.quota.scope: a global limit needs the 'global_limits' section"),
    ("a global limit's period that is no unit of the service",
     lambda c: c["products"]["partner"]["quota"].update(renewal_period_s=120),
     "products.partner.quota.renewal_period_s: a global limit's period must be a unit"),
    ("* with allow_credentials",
     lambda c: c["cors"].update(allowed_origins=["*"], allow_credentials=True),
     "cors.allowed_origins[0]:"),
    ("cache on an operation without GET",
     lambda c: op(c, 0).update(cache={"ttl_s": 30}),
     "operations[0].cache: only an operation whose methods hold GET can be cached"),
    ("an unreachable template",
     lambda c: c["operations"].append({"name": "get_invoice_again", "methods": ["GET"],
                                       "path_template": "/invoices/{id}"}),
     "operations[4].path_template: can never be reached"),
    ("jwt auth without the jwt section",
     lambda c: (c.pop("jwt"), op(c, 0).update(auth="subscription_key"),
                c["consumers"][1].update(keys=[KEY_B]), op(c, 3).update(auth="jwt")),
     "operations[3].auth: 'jwt' needs the 'jwt' section"),
    ("products on an operation open to anyone",
     lambda c: op(c, 2).update(products=["starter"]),
     "operations[2].products: an operation with auth 'none' has no consumer"),
    ("a duplicate operation name",
     lambda c: c["operations"].append({"name": "validate", "path": "/other"}),
     "operations[4].name: duplicate operation name 'validate'"),
    ("a rewrite naming a parameter the template lacks",
     lambda c: op(c, 1).update(rewrite="/api/v1/invoices/{id}"),
     "operations[1].rewrite:"),
    ("a JMESPath syntax error",
     lambda c: op(c, 0)["request_body"].update(transform="{invoice_id: body.["),
     "operations[0].request_body.transform:"),
    ("a consumer id starting with jwt:",
     lambda c: c["consumers"][0].update(id="jwt:flow"),
     "consumers[0].id: 'jwt:flow' may not start with 'jwt:'"),
    ("rate-limit header names that are the same",
     lambda c: c.update(rate_limit_headers={"limit": "x-rl", "remaining": "X-RL"}),
     "rate_limit_headers: the three header names must differ"),
    ("a cache entry larger than the whole cache",
     lambda c: (c["cache_limits"].update(max_bytes=4096),
                op(c, 1)["cache"].update(max_entry_bytes=8192)),
     "operations[1].cache.max_entry_bytes: must be at most cache_limits.max_bytes (4096)"),
    ("the subscription key as a cache key",
     lambda c: op(c, 1)["cache"].update(vary_by_query=["subscription-key"]),
     "operations[1].cache.vary_by_query[0]: the subscription key is never part of a cache key"),
    ("a header both set and removed",
     lambda c: op(c, 0)["request_headers"].update(remove=["X-Consumer-Id"]),
     "operations[0].request_headers.remove[0]: header 'X-Consumer-Id' is already named at"),
    ("an origin with a path",
     lambda c: c["cors"].update(allowed_origins=["https://make.powerautomate.com/flows"]),
     "cors.allowed_origins[0]:"),
    ("names that share a metric label",
     lambda c: c["operations"].append({"name": "get.invoice", "path": "/x"}),
     "operations[4].name: 'get.invoice' would share the metric label"),
    ("an unknown default product",
     lambda c: c["jwt"].update(default_product="gold"),
     "jwt.default_product: unknown product 'gold'"),
    ("an inline HMAC key that is too short",
     lambda c: c["jwt"].update(jwks={"keys": [{"kty": "oct", "k": "c2hvcnQ", "alg": "HS256"}]},
                               algorithms=["HS256"]),
     "jwt.jwks.keys[0]"),
]


@pytest.mark.parametrize("name,edit,message", ONLY_CHECK_REFUSES,
                         ids=[c[0] for c in ONLY_CHECK_REFUSES])
def test_accepted_by_the_schema_refused_by_tollgate_check(tmp_path, name, edit, message):
    config = base()
    returned = edit(config)
    text = returned if isinstance(returned, str) else json.dumps(config)
    assert schema_errors(json.loads(text)) == [], name
    result = check(tmp_path, text)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr, result.stderr
