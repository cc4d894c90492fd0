"""The monitoring a team imports (k8s/monitoring/): the Grafana dashboard, the alerting rules (a
plain rules file and the same groups as a PrometheusRule) and their promtool unit tests.

promtool checks and unit-tests the rules. Then a real Prometheus (Debian's `prometheus`, which
`make setup` installs) scrapes a real Envoy running the built filter, configured so that every
panel has something to show: allowed and refused requests of every kind, a backend 5xx (masked),
cache hits, misses and an eviction, a response transform that fails, and a rate-limit service
that is not there (failures, and 503s under failure_mode deny). Every query of every panel must
return data, and every alert the traffic calls for must be active there, on real series.

tollgate itself has no way to crash on purpose, so the Wasm VM panel and alerts are driven by a
second Envoy whose filter, under the same plugin name and failure policy, runs a few-byte module
that traps on every request: Envoy then counts the reloads exactly as it would for tollgate.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

import stack
from conftest import sha256_ref

REPO = stack.REPO
MONITORING = REPO / "k8s" / "monitoring"
RULES = MONITORING / "tollgate-alerts.rules.yml"
PROMETHEUS_RULE = MONITORING / "prometheus-rule.yaml"
ALERT_TESTS = MONITORING / "tests" / "alerts-test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make setup` installs Debian's prometheus package"
    return found


def rule_groups(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())["groups"]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for group in rule_groups(RULES) for rule in group["rules"]
            if "alert" in rule}


# --- The rules: promtool, the PrometheusRule, the unit tests, the runbooks -------------------

def test_promtool_accepts_the_rules_file_and_the_prometheus_rules_groups(tmp_path):
    extracted = tmp_path / "prometheus-rule-groups.yml"
    extracted.write_text(yaml.safe_dump(
        {"groups": yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]["groups"]}))
    for path in (RULES, extracted):
        checked = subprocess.run([tool("promtool"), "check", "rules", str(path)],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout, checked.stdout


def test_the_prometheus_rule_carries_exactly_the_rules_files_groups():
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == rule_groups(RULES), (
        "prometheus-rule.yaml's spec.groups differs from tollgate-alerts.rules.yml's groups: "
        "copy the rules file's groups into it (indented under spec:)")


def test_promtool_unit_tests_pass():
    tested = subprocess.run([tool("promtool"), "test", "rules", str(ALERT_TESTS)],
                            capture_output=True, text=True, timeout=120, cwd=ALERT_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_quiet():
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    assert {case["alertname"] for case in cases} == set(alerts())
    for name in alerts():
        own = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in own), f"{name} never fires in the unit tests"
        assert any(not case["exp_alerts"] for case in own), f"{name} is never shown quiet"


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The headings of a Markdown text, fenced code left out."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.append(line.lstrip("#"))
    return found


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section():
    anchors = {github_anchor(heading) for heading in headings(OPERATIONS_DOC.read_text())}
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        # runbook_url, the name Alertmanager templates and Grafana look for; a path in the
        # repository (which has no public address), as the rules file says.
        document, _, anchor = annotations["runbook_url"].partition("#")
        assert document == "docs/operations.md", name
        assert anchor == name.lower(), f"{name}: runbook section #{anchor}"
        assert anchor in anchors, f"{name}: docs/operations.md has no section #{anchor}"


# --- The dashboard's model ------------------------------------------------------------------

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_targets() -> list[tuple[str, dict]]:
    """(panel title, target) for every query of every panel."""
    return [(panel["title"], target) for panel in dashboard()["panels"]
            if panel["type"] != "row" for target in panel["targets"]]


def test_dashboard_is_an_importable_grafana_model():
    model = dashboard()
    assert model["uid"] and model["title"] and model["schemaVersion"] >= 36
    variables = {v["name"]: v for v in model["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    for name, variable in variables.items():
        if name != "datasource":
            assert variable["type"] == "query" and variable["datasource"] == DATASOURCE, name
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))
    # The panels tile the grid: 24 columns, no two overlapping.
    taken = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    used = set()
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["description"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            used |= set(re.findall(r"\$\{?(\w+)", target["expr"]))
    assert used - {"__rate_interval"} <= set(variables), used
    assert set(variables) - {"datasource"} <= used, "a variable no panel uses"
    titles = {panel["title"] for panel in model["panels"]}
    for needed in ("Requests by consumer", "Requests by operation", "Requests by outcome",
                   "Denied requests by outcome", "Backend 5xx share (Envoy upstream)",
                   "Backend latency (Envoy upstream_rq_time)", "Rate-limit service failures",
                   "Quota use: calls admitted in the last 24 hours",
                   "Cache hits and misses per operation", "Masked backend errors",
                   "VM crashes: reloads", "Wasm VMs (V8)"):
        assert needed in titles, needed


# --- A real Prometheus scraping a real Envoy --------------------------------------------------

KEY_HEADER = "Ocp-Apim-Subscription-Key"
CONSUMERS = {"contoso-portal": "unlimited", "invoice-flow": "starter", "burst": "burst",
             "tiny": "tiny", "partner-app": "partner"}
KEYS = {name: secrets.token_hex(16) for name in CONSUMERS}


def monitored_plugin() -> dict:
    """Every kind of outcome, a 5xx (masked), a cache of one slot (so a second key evicts the
    first), a response transform that fails on plain text, and global limits through a cluster
    nothing listens on with failure_mode deny."""
    return {
        "global_limits": {"cluster": stack.RLS_CLUSTER, "failure_mode": "deny", "timeout_ms": 50},
        "products": {
            "unlimited": {}, "starter": {},
            "burst": {"rate_limit": {"calls": 1, "renewal_period_s": 3600}},
            "tiny": {"quota": {"calls": 1, "renewal_period_s": 86400}},
            "partner": {"rate_limit": {"calls": 100, "renewal_period_s": 60, "scope": "global"}},
        },
        "consumers": [{"id": name, "product": product, "keys": [sha256_ref(KEYS[name])]}
                      for name, product in CONSUMERS.items()],
        "cache_limits": {"max_bytes": 4096},
        "operations": [
            {"name": "validate", "methods": ["POST"], "path": "/validate",
             "rewrite": "/api/v1/validate"},
            {"name": "admin", "path_prefix": "/admin", "products": ["unlimited"]},
            {"name": "fail", "methods": ["GET"], "path": "/fail", "rewrite": "/status/500",
             "mask_backend_errors": True},
            {"name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{invoice_id}",
             "rewrite": "/api/v1/invoices/{invoice_id}",
             "cache": {"ttl_s": 300, "max_entry_bytes": 4096}},
            {"name": "reshaped", "methods": ["GET"], "path": "/reshaped", "rewrite": "/text/200",
             "response_body": {"transform": "{valid: body.valid}"}},
        ],
    }


def trapping_module() -> bytes:
    """A proxy-wasm module (ABI 0.2.1) whose proxy_on_request_headers executes `unreachable`:
    the VM fails on every request, as a panicking filter's would. Encoded here byte by byte:
    no wasm toolchain needed."""
    def uleb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def vector(items: list[bytes]) -> bytes:
        return uleb(len(items)) + b"".join(items)

    def section(kind: int, body: bytes) -> bytes:
        return bytes([kind]) + uleb(len(body)) + body

    def name(text: str) -> bytes:
        return uleb(len(text)) + text.encode()

    i32 = 0x7F
    types = [([i32], [i32]), ([i32, i32], []), ([i32, i32, i32], [i32]), ([], []),
             ([i32, i32], [i32])]
    # (export, type, body): i32.const 1024 (the one allocation the host may ask for), nothing,
    # unreachable, nothing, i32.const 1 (true).
    functions = [("proxy_on_memory_allocate", 0, b"\x41\x80\x08"),
                 ("proxy_on_context_create", 1, b""),
                 ("proxy_on_request_headers", 2, b"\x00"),
                 ("proxy_abi_version_0_2_1", 3, b""),
                 ("proxy_on_vm_start", 4, b"\x41\x01"),
                 ("proxy_on_configure", 4, b"\x41\x01")]
    bodies = [b"\x00" + code + b"\x0b" for _, _, code in functions]
    return (b"\x00asm\x01\x00\x00\x00"
            + section(1, vector([b"\x60" + vector([bytes([p]) for p in params])
                                 + vector([bytes([r]) for r in results])
                                 for params, results in types]))
            + section(3, vector([uleb(kind) for _, kind, _ in functions]))
            + section(5, vector([b"\x00" + uleb(2)]))
            + section(7, vector([name("memory") + b"\x02\x00"]
                                + [name(export) + b"\x00" + uleb(index)
                                   for index, (export, _, _) in enumerate(functions)]))
            + section(10, vector([uleb(len(body)) + body for body in bodies])))


class Prometheus:
    """Debian's Prometheus on 127.0.0.1, scraping Envoy admin ports every second, with the
    shipped rules loaded and evaluated every second."""

    def __init__(self, workdir: Path, admin_ports: list[int]):
        self.port = stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "envoy", "metrics_path": "/stats/prometheus",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"
                                                                for port in admin_ports]}]}],
        }))
        self.log_path = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        stack.wait_until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).ok,
                         f"prometheus ({self.log_path})", process=self.process)

    def api(self, path: str, **params) -> dict:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        assert data["resultType"] == "vector", data
        return data["result"]

    def total(self, expr: str) -> float:
        return sum(float(sample["value"][1]) for sample in self.query(expr))

    def stop(self):
        stack.stop(self.process)


def admin_total(envoy: stack.Envoy, metric: str) -> float:
    """The sum of one metric's series on Envoy's /stats/prometheus (a histogram's `_count`)."""
    text = requests.get(f"{envoy.admin}/stats/prometheus", timeout=5).text
    return sum(float(value) for value in
               re.findall(rf"^{metric}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def send(envoy: stack.Envoy, method: str, path: str, consumer: str | None = None,
         key: str | None = None) -> int:
    headers = {KEY_HEADER: key if key is not None else KEYS[consumer]} if consumer or key else {}
    body = {} if method == "POST" else None
    return requests.request(method, f"{envoy.url}{path}", headers=headers, json=body,
                            timeout=10).status_code


def drive(gateway: stack.Envoy) -> list[int]:
    """The traffic the panels and alerts are shown with; returns every status."""
    statuses = []
    for _ in range(5):
        statuses.append(send(gateway, "POST", "/validate", "contoso-portal"))
    for path in ("/invoices/INV-1", "/invoices/INV-1", "/invoices/INV-2"):  # miss, hit, evict
        statuses.append(send(gateway, "GET", path, "contoso-portal"))
    for _ in range(10):
        statuses.append(send(gateway, "GET", "/fail", "contoso-portal"))
    statuses.append(send(gateway, "GET", "/reshaped", "contoso-portal"))
    for _ in range(2):
        statuses.append(send(gateway, "GET", "/admin/stats", "invoice-flow"))
        statuses.append(send(gateway, "POST", "/validate", "burst"))
        statuses.append(send(gateway, "POST", "/validate", "tiny"))
    for _ in range(6):
        statuses.append(send(gateway, "POST", "/validate", "partner-app"))
        statuses.append(send(gateway, "POST", "/validate"))
        statuses.append(send(gateway, "POST", "/validate", key="not-a-key-of-anyone"))
    statuses.append(send(gateway, "GET", "/nowhere", "contoso-portal"))
    return statuses


def crash_and_reload(crashing: stack.Envoy):
    """Requests to the trapping module until Envoy has both reloaded its VM and refused a
    request during the back-off (about a second after a VM is made, no reload)."""
    deadline = time.monotonic() + 15
    while (admin_total(crashing, "envoy_wasm_tollgate_vm_reload_success") < 1
           or admin_total(crashing, "envoy_wasm_tollgate_vm_reload_backoff") < 1):
        assert time.monotonic() < deadline, crashing.log()[-2000:]
        assert requests.get(f"{crashing.url}/anything", timeout=10).status_code == 503
        time.sleep(0.3)


@pytest.fixture(scope="module")
def scraped(workdir, backend, tmp_path_factory):
    """A gateway and the crashing Envoy, scraped by Prometheus before and after the traffic;
    yields (prometheus, evaluation time, seconds the queries' rate windows must cover)."""
    work = tmp_path_factory.mktemp("monitoring")
    # Nothing listens on the rate-limit service's port: every call fails at once.
    gateway_config = stack.render_envoy_config(
        monitored_plugin(), listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=backend.port, rls_port=stack.free_port())
    module = work / "trap.wasm"
    module.write_bytes(trapping_module())
    crashing_config = stack.render_envoy_config(
        "{}", listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=backend.port, wasm=module)
    assert stack.tollgate_filter(crashing_config)["failure_policy"] == "FAIL_RELOAD"
    assert stack.tollgate_filter(crashing_config)["name"] == "tollgate"
    started = []
    try:
        for config in (gateway_config, crashing_config):
            # Histograms reach /stats/prometheus at each stats flush (every 5 s by default).
            config["stats_flush_interval"] = "1s"
        gateway = stack.Envoy(work, gateway_config, name="monitored")
        started.append(gateway)
        crashing = stack.Envoy(work, crashing_config, name="crashing-vm")
        started.append(crashing)
        # Envoy makes some series on first use (a status code's counters, a histogram once it
        # has a sample): one 200 and one 500 first, so the first scrape has them too and rates
        # see every request after it.
        statuses = [send(gateway, "POST", "/validate", "contoso-portal"),
                    send(gateway, "GET", "/fail", "contoso-portal")]
        assert statuses == [200, 500]
        time.sleep(1.2)
        prometheus = Prometheus(work, [gateway.admin_port, crashing.admin_port])
        started.append(prometheus)
        # A first scrape of both, before any traffic: every counter starts from a sample at 0.
        stack.wait_until(lambda: prometheus.total("up") == 2
                         and prometheus.query("tollgate_requests_total")
                         and len(prometheus.query("envoy_wasm_tollgate_vm_reload_success")) == 2,
                         "first scrape of both Envoys")
        before = time.time()
        statuses += drive(gateway)
        for status in (200, 401, 403, 404, 429, 500, 502, 503):
            assert status in statuses, (status, statuses)
        crash_and_reload(crashing)
        # Prometheus has the final counts once they match Envoy's (histograms after a flush).
        time.sleep(1.2)
        final = {metric: admin_total(gateway, metric) for metric in
                 ("tollgate_requests_total", "tollgate_upstream_latency_ms_count",
                  "tollgate_rate_limit_service_failures_total", "tollgate_cache_evictions_total")}
        assert final["tollgate_requests_total"] == len(statuses)
        final_reloads = admin_total(crashing, "envoy_wasm_tollgate_vm_reload_success")
        stack.wait_until(
            lambda: all(prometheus.total(metric) == value for metric, value in final.items())
            and prometheus.total("sum(envoy_wasm_tollgate_vm_reload_success)") >= final_reloads,
            "Prometheus scraping the final counts")
        at = time.time()
        yield prometheus, at, math.ceil(at - before) + 5
        assert "panicked" not in gateway.log()
    finally:
        for process in reversed(started):
            process.stop()


# Queries that return series whose value is rightly 0 here, with the reason; every other query
# must show the traffic (a value above 0).
ZERO_HERE = {
    ("VM crashes: reloads", "B"): "a reload that fails needs a module that starts once and "
                                  "never again; the series is there, at 0",
}


def panel_query(expr: str, window_s: int) -> str:
    """A panel's expression as Grafana would send it with every variable on All."""
    expr = expr.replace("$__rate_interval", f"{window_s}s")
    expr = re.sub(r'envoy_cluster_name=~"\$\{?backend_cluster\}?"', 'envoy_cluster_name=~"backend"',
                  expr)
    expr = re.sub(r'=~"\$\{?\w+\}?"', '=~".*"', expr)
    assert "$" not in expr, expr
    return expr


@pytest.mark.parametrize("title,ref", [(title, target["refId"]) for title, target in
                                       panel_targets()])
def test_every_dashboard_query_returns_data_from_real_envoy_stats(scraped, title, ref):
    prometheus, at, window_s = scraped
    (target,) = [t for name, t in panel_targets() if name == title and t["refId"] == ref]
    expr = panel_query(target["expr"], window_s)
    result = prometheus.query(expr, at)
    assert result, f"{title} ({ref}) returned nothing: {expr}"
    values = [float(sample["value"][1]) for sample in result]
    if (title, ref) in ZERO_HERE:
        assert all(value == 0 for value in values), (expr, result)
    else:
        assert any(math.isfinite(value) and value > 0 for value in values), (expr, result)


# What the traffic calls for, and what it must not set off.
EXPECTED_ALERTS = {
    "TollgateBackendErrorRateHigh": {"operation": "fail"},
    "TollgateDenialsSpiking": {},
    "TollgateConsumerOutOfQuota": {"consumer": "tiny"},
    "TollgateRateLimitServiceFailing": {},
    "TollgateRateLimitServiceDenying": {},
    "TollgateWasmVmCrashed": {},
}
NOT_EXPECTED = {"TollgateWasmVmReloadFailing"}


def test_every_alert_evaluates_on_real_envoy_stats_and_the_traffic_sets_off_the_right_ones(
        scraped):
    prometheus, _, _ = scraped
    assert set(EXPECTED_ALERTS) | NOT_EXPECTED == set(alerts())
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == set(alerts())

    def active() -> dict[str, list[dict]]:
        found = {}
        for alert in prometheus.api("alerts")["alerts"]:
            found.setdefault(alert["labels"]["alertname"], []).append(alert)
        return found

    # Rules are evaluated every second; `for` keeps most of them pending, which is enough.
    stack.wait_until(lambda: set(EXPECTED_ALERTS) <= set(active()), "the expected alerts",
                     timeout_s=20)
    for rule in prometheus.api("rules")["groups"][0]["rules"]:
        assert rule["health"] == "ok", rule
    found = active()
    assert not NOT_EXPECTED & set(found), found
    for name, labels in EXPECTED_ALERTS.items():
        assert any(labels.items() <= alert["labels"].items() for alert in found[name]), found[name]
    (crashed,) = found["TollgateWasmVmCrashed"]
    assert crashed["state"] == "firing"
    assert found["TollgateConsumerOutOfQuota"][0]["state"] == "firing"
