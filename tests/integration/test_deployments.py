"""The ways users run tollgate: Envoy configs, the AKS sidecar, Istio, docker compose, and
tollgate-rls (the rate-limit service of global limits) beside each.

No cluster and no Docker engine run on this machine: these tests load every shipped Envoy
configuration in a real Envoy (`--mode validate`, which runs the filter's on_configure), run
`tollgate check` on every shipped plugin configuration, read the manifests, the compose file
and the Dockerfiles, and check the manifests against Kubernetes' schemas (built-in kinds,
kubernetes-validate), Istio's and the Prometheus Operator's (their CRDs,
tests/data/k8s-schemas/). cert-manager's Certificate is checked by neither: no schema of it is at
hand, so only what the other manifests rely on is asserted
(test_certificates_are_what_the_pods_and_the_gateway_read). The monitoring's rules and dashboard
are tested on a real Prometheus in test_monitoring.py."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import textwrap

import jsonschema
import kubernetes_validate
import pytest
import yaml

import stack
from shipped import (IDEMPOTENT_METHODS, OTHER_METHODS, REPO, cluster_endpoints, clusters,
                     compose_file, configmap_files, envoy_bootstraps, manifests,
                     plugin_configurations, plugin_of, public_routes, seconds, speaks_http2,
                     wasm_filters, with_local_module, with_test_certificate)

BOOTSTRAPS = envoy_bootstraps()
PLUGINS = plugin_configurations()
MANIFESTS = dict(manifests())

# The gRPC service name Envoy calls and tollgate-rls reports health for.
RLS_SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
# spec.sha256 of a WasmPlugin, as Istio's CRD schema has it (../shared/k8s-schemas/).
ISTIO_SHA256 = r"(^$|^[a-f0-9]{64}$)"
# Istio's CRD, copied unchanged with its LICENSE and SOURCE.md (a clone has no ../shared).
ISTIO_CRD = REPO / "tests" / "data" / "k8s-schemas" / "istio-wasmplugin-crd.yaml"
# Istio's networking and security CRDs (AuthorizationPolicy among them), copied the same way.
ISTIO_SECURITY_CRDS = REPO / "tests" / "data" / "k8s-schemas" / "istio-networking-security-crds.yaml"
# Istio's ServiceEntry CRD (k8s/istio/entra-id.yaml), copied the same way.
ISTIO_SERVICEENTRY_CRD = REPO / "tests" / "data" / "k8s-schemas" / "istio-serviceentry-crd.yaml"
# The Prometheus Operator's PodMonitor and PrometheusRule CRDs (k8s/monitoring/), copied the same
# way with their own LICENSE and SOURCE.md.
PROMETHEUS_OPERATOR_CRDS = REPO / "tests" / "data" / "k8s-schemas" / "prometheus-operator"


def test_everything_expected_is_shipped():
    wheres = [where for where, _ in BOOTSTRAPS]
    assert "envoy/envoy.yaml" in wheres
    assert "envoy/envoy-compose.yaml" in wheres
    assert any(w.startswith("k8s/sidecar/configmap.yaml") for w in wheres)
    assert any(w.startswith("k8s/istio/wasmplugin.yaml") for w, _ in PLUGINS)
    for manifest in ("k8s/rls/deployment.yaml:Deployment/tollgate-rls",
                     "k8s/rls/deployment.yaml:PodDisruptionBudget/tollgate-rls",
                     "k8s/rls/service.yaml:Service/tollgate-rls",
                     "k8s/rls/networkpolicy.yaml:NetworkPolicy/tollgate-rls",
                     "k8s/rls/istio-authorizationpolicy.yaml:AuthorizationPolicy/tollgate-rls",
                     "k8s/sidecar/deployment.yaml:ServiceAccount/invoice-validator",
                     "k8s/sidecar/deployment.yaml:PodDisruptionBudget/invoice-validator",
                     "k8s/istio/workload.yaml:ServiceAccount/invoice-validator",
                     "k8s/istio/workload.yaml:Deployment/invoice-validator",
                     "k8s/istio/workload.yaml:Service/invoice-validator",
                     "k8s/istio/workload.yaml:PodDisruptionBudget/invoice-validator",
                     "k8s/istio/entra-id.yaml:ServiceEntry/entra-id",
                     "k8s/istio/entra-id.yaml:DestinationRule/entra-id",
                     "k8s/rls/examples/redis-secret.yaml:Secret/tollgate-rls-redis",
                     "k8s/rls/dev/redis.yaml:Deployment/tollgate-redis",
                     "k8s/rls/dev/redis.yaml:Service/tollgate-redis",
                     "k8s/sidecar/certificate.yaml:Certificate/invoice-validator-tls",
                     "k8s/istio/certificate.yaml:Certificate/invoice-validator-tls",
                     "k8s/istio/gateway.yaml:Gateway/invoice-validator",
                     "k8s/istio/virtualservice.yaml:VirtualService/invoice-validator",
                     "k8s/istio/virtualservice.yaml:DestinationRule/invoice-validator",
                     "k8s/monitoring/prometheus-rule.yaml:PrometheusRule/tollgate",
                     "k8s/monitoring/podmonitor.yaml:PodMonitor/tollgate-envoy-sidecar",
                     "k8s/monitoring/podmonitor.yaml:PodMonitor/tollgate-istio-proxy"):
        assert manifest in MANIFESTS, manifest
    assert (REPO / "oci" / "rls.Dockerfile").exists()
    assert (REPO / ".dockerignore").exists()


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=[w for w, _ in BOOTSTRAPS])
def test_every_shipped_envoy_config_validates(tmp_path, certificate, where, bootstrap):
    # The shipped certificate paths (.run/tls/, the container's /etc/envoy/tls/, the pod's
    # Secret) do not exist here: a test certificate stands in. Validation reads the files a
    # listener names, but not the ones an SDS file names (test_https_and_retries.py serves
    # the sidecar's for real).
    config = with_test_certificate(with_local_module(bootstrap), configmap_files(where),
                                   *certificate, tmp_path)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    result = stack.validate(path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "tollgate: configuration loaded" in output


@pytest.mark.parametrize("where,plugin", PLUGINS, ids=[w for w, _ in PLUGINS])
def test_every_shipped_plugin_config_passes_tollgate_check(tmp_path, where, plugin):
    path = tmp_path / "plugin.json"
    path.write_text(plugin)
    result = stack.tollgate_cli("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_every_shipped_envoy_config_fails_closed():
    for where, bootstrap in BOOTSTRAPS:
        for block in wasm_filters(bootstrap):
            assert block.get("failure_policy") in ("FAIL_RELOAD", "FAIL_CLOSED"), where
            assert block["vm_config"]["runtime"] == "envoy.wasm.runtime.v8", where
        assert "stats_config" in bootstrap, f"{where}: metric labels need the stats_tags"


def test_no_shipped_config_accepts_a_key_found_in_the_repository():
    accepted = set()
    for _, plugin in PLUGINS:
        for consumer in json.loads(plugin).get("consumers", []):
            accepted.update(consumer.get("keys", []))
    assert accepted, "the shipped configs hold key hashes"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in tracked:
        path = REPO / name
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for word in set(re.findall(r"[A-Za-z0-9_\-+/=]{12,128}", text)):
            digest = "sha256:" + hashlib.sha256(word.encode()).hexdigest()
            assert digest not in accepted, f"{name} holds a key a shipped config accepts"


def test_sidecar_deployment_carries_what_aks_needs():
    deployment = MANIFESTS["k8s/sidecar/deployment.yaml:Deployment/invoice-validator"]
    service = MANIFESTS["k8s/sidecar/service.yaml:Service/invoice-validator"]
    configmap = MANIFESTS["k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy"]
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"app", "envoy"}
    envoy = containers["envoy"]
    # Probes on Envoy's /ready, through the ops listener (the admin API stays on loopback).
    for probe in ("readinessProbe", "livenessProbe"):
        assert envoy[probe]["httpGet"]["path"] == "/ready"
        port = envoy[probe]["httpGet"]["port"]
        assert port in [p["name"] for p in envoy["ports"]]
    bootstrap = yaml.safe_load(configmap["data"]["envoy.yaml"])
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    ops_port = next(p["containerPort"] for p in envoy["ports"] if p["name"] == "ops")
    listeners = {l["address"]["socket_address"]["port_value"]: l
                 for l in bootstrap["static_resources"]["listeners"]}
    ops_routes = listeners[ops_port]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    assert sorted(r["match"]["path"] for r in ops_routes) == ["/ready", "/stats/prometheus"]
    # Every container asks for resources.
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        assert container["resources"]["requests"], container["name"]
    # The .wasm: copied by an init container into a volume Envoy reads at the configured path.
    init = pod["initContainers"][0]
    shared = {m["name"] for m in init["volumeMounts"]} & {m["name"] for m in envoy["volumeMounts"]}
    assert shared
    mount = next(m["mountPath"] for m in envoy["volumeMounts"] if m["name"] in shared)
    module = wasm_filters(bootstrap)[0]["vm_config"]["code"]["local"]["filename"]
    assert module.startswith(mount + "/")
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    # The Service selects the pods and targets Envoy, never the app directly.
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    traffic = next(p["containerPort"] for p in envoy["ports"] if p["name"] == "https")
    assert wasm_filters({"static_resources": {"listeners": [listeners[traffic]]}}), \
        "the traffic port goes through tollgate"
    assert "--host" in containers["app"]["command"]
    assert containers["app"]["command"][containers["app"]["command"].index("--host") + 1] == "127.0.0.1"


def test_istio_wasmplugin_carries_what_istio_needs():
    plugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    deployment = MANIFESTS["k8s/istio/workload.yaml:Deployment/invoice-validator"]
    spec = plugin["spec"]
    assert plugin["apiVersion"].startswith("extensions.istio.io/")
    assert spec["phase"] == "AUTHN"
    # As the plain sidecar's failure_policy: a crashed VM is reloaded, requests fail closed
    # meanwhile. (FAIL_CLOSE would leave it answering 503 behind probes that bypass it.)
    assert spec["failStrategy"] == "FAIL_RELOAD"
    # Requests coming in to the workload only: without `match`, Istio also puts the filter on
    # the sidecar's outbound side, in the way of every call the app itself makes.
    assert spec["match"] == [{"mode": "SERVER"}]
    assert spec["url"].startswith("oci://")
    # Istio's schema: empty (no check) or 64 lowercase hex digits, no "sha256:" prefix.
    assert re.fullmatch(ISTIO_SHA256, spec["sha256"]), spec["sha256"]
    assert selects(spec["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert spec["pluginConfig"]["operations"]


def test_oci_images_follow_the_istio_wasm_spec():
    istio = (REPO / "oci" / "wasm.Dockerfile").read_text()
    assert re.search(r"^FROM scratch$", istio, re.M)
    assert re.search(r"^COPY \S+tollgate\.wasm \./plugin\.wasm$", istio, re.M)
    init = (REPO / "oci" / "wasm-init.Dockerfile").read_text()
    assert "tollgate.wasm" in init


def test_compose_file_runs_the_tested_envoy_with_the_built_module():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    envoy = compose["services"]["envoy"]
    tag = envoy["image"].split(":")[1]
    version = subprocess.run([stack.envoy_binary(), "--version"], capture_output=True,
                             text=True).stdout
    tested = re.search(r"/(\d+\.\d+)\.\d+/", version).group(1)
    assert tag.startswith(f"v{tested}"), (tag, tested)
    mounts = " ".join(envoy["volumes"])
    assert "target/wasm32-wasip1/release/tollgate.wasm:/etc/tollgate/tollgate.wasm" in mounts
    assert "envoy/envoy-compose.yaml" in mounts
    # HTTPS: the certificate `make compose-config` makes, where envoy-compose.yaml reads it.
    bootstrap = yaml.safe_load((REPO / "envoy" / "envoy-compose.yaml").read_text())
    listener = bootstrap["static_resources"]["listeners"][0]
    (served,) = stack.downstream_tls(listener)["common_tls_context"]["tls_certificates"]
    tls_mount = next(v for v in envoy["volumes"] if v.startswith("./.run/compose-tls:"))
    _, inside, mode = tls_mount.split(":")
    assert mode == "ro"
    assert served["certificate_chain"]["filename"] == f"{inside}/tls.crt"
    assert served["private_key"]["filename"] == f"{inside}/tls.key"
    assert compose["services"]["backend"]["build"] == "./backend"
    assert (REPO / "backend" / "Dockerfile").exists()
    for published in envoy["ports"]:
        assert published.startswith("127.0.0.1:"), published


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here")
def test_docker_compose_accepts_the_file():
    result = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- Global limits: tollgate-rls and the clusters that reach it ---------------------------

def rls_deployment() -> dict:
    return MANIFESTS["k8s/rls/deployment.yaml:Deployment/tollgate-rls"]


def rls_service() -> dict:
    return MANIFESTS["k8s/rls/service.yaml:Service/tollgate-rls"]


def rls_host_and_port() -> tuple[str, int]:
    """tollgate-rls's Service as the cluster's DNS knows it."""
    service = rls_service()
    (port,) = service["spec"]["ports"]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    return f"{name}.{namespace}.svc.cluster.local", port["port"]


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=[w for w, _ in BOOTSTRAPS])
def test_global_limits_go_through_an_http2_cluster_of_the_bootstrap(where, bootstrap):
    section = plugin_of(bootstrap).get("global_limits")
    if section is None:
        pytest.skip(f"{where} has no global limits")
    cluster = clusters(bootstrap).get(section["cluster"])
    assert cluster, f"{where}: no cluster {section['cluster']!r} for global limits"
    assert speaks_http2(cluster), f"{where}: gRPC to the rate-limit service needs HTTP/2"
    assert cluster_endpoints(cluster), where


def test_every_environment_ships_a_global_product():
    """The reference, compose, the sidecar and Istio each show a global limit in use."""
    shown = {where.split(":")[0] for where, plugin in PLUGINS
             if any(isinstance(limit, dict) and limit.get("scope") == "global"
                    for product in json.loads(plugin)["products"].values()
                    for limit in product.values())}
    assert {"envoy/envoy.yaml", "envoy/envoy-compose.yaml", "k8s/sidecar/configmap.yaml",
            "k8s/istio/wasmplugin.yaml"} <= shown, shown


def test_rls_deployment_carries_what_aks_needs():
    deployment = rls_deployment()
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = pod["containers"]
    assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+/tollgate-rls:[\w.-]+", container["image"]), \
        container["image"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8081}
    assert container["args"] == ["--listen", "0.0.0.0:8081"]

    # Ready only while Redis answers: Kubernetes' own gRPC probe on the RLS service's health.
    readiness = container["readinessProbe"]
    assert readiness["grpc"] == {"port": 8081, "service": RLS_SERVICE}
    # Liveness must not follow Redis (every health name of tollgate-rls does), or a Redis
    # outage would restart every pod: the port accepting connections is enough.
    liveness = container["livenessProbe"]
    assert "grpc" not in liveness and "httpGet" not in liveness
    assert liveness["tcpSocket"]["port"] in ("grpc", 8081)

    # The Redis URL (it carries the access key) from the Secret, never written here.
    env = {e["name"]: e for e in container["env"]}
    redis = env["TOLLGATE_RLS_REDIS"]
    assert "value" not in redis
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "tollgate-rls-redis", "key": "url"}
    dumped = yaml.safe_dump(deployment)
    assert "redis://" not in dumped and "rediss://" not in dumped
    assert "--redis" not in container["args"]

    # Non-root, read-only, no capabilities, no way up.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]

    # Drains and upgrades keep one replica serving.
    budget = MANIFESTS["k8s/rls/deployment.yaml:PodDisruptionBudget/tollgate-rls"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_rls_service_speaks_grpc_over_http2():
    service = rls_service()
    deployment = rls_deployment()
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    (port,) = service["spec"]["ports"]
    # `grpc` and kubernetes.io/h2c: Istio (and gateways) then use HTTP/2 to it.
    assert port["name"] == "grpc"
    assert port["appProtocol"] == "kubernetes.io/h2c"
    assert port["port"] == 8081
    container_ports = [p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0][
        "ports"]]
    assert port["targetPort"] in container_ports


def test_rls_redis_secret_is_an_example_of_azure_cache_for_redis():
    secret = MANIFESTS["k8s/rls/examples/redis-secret.yaml:Secret/tollgate-rls-redis"]
    assert secret["metadata"]["namespace"] == rls_deployment()["metadata"]["namespace"]
    url = secret["stringData"]["url"]
    # TLS on 6380, a placeholder where the key goes: nothing real is committed.
    assert re.fullmatch(r"rediss://:<access-key>@<name>\.redis\.cache\.windows\.net:6380/0", url), url
    text = (REPO / "k8s" / "rls" / "examples" / "redis-secret.yaml").read_text()
    assert "kubectl" in text and "create secret generic tollgate-rls-redis" in text


def test_dev_redis_keeps_nothing_and_matches_the_secret_it_documents():
    deployment = MANIFESTS["k8s/rls/dev/redis.yaml:Deployment/tollgate-redis"]
    service = MANIFESTS["k8s/rls/dev/redis.yaml:Service/tollgate-redis"]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert all("persistentVolumeClaim" not in v for v in pod.get("volumes", []))
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    url = f"redis://{service['metadata']['name']}:6379/0"
    assert url in (REPO / "k8s" / "rls" / "dev" / "redis.yaml").read_text()
    assert "Azure Cache for Redis" in (REPO / "k8s" / "rls" / "dev" / "redis.yaml").read_text()


def test_sidecar_bootstrap_reaches_tollgate_rls_over_http2():
    configmap = MANIFESTS["k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy"]
    bootstrap = yaml.safe_load(configmap["data"]["envoy.yaml"])
    cluster = clusters(bootstrap)[plugin_of(bootstrap)["global_limits"]["cluster"]]
    assert cluster["name"] == "tollgate_rls"
    assert speaks_http2(cluster)
    assert cluster["type"] == "STRICT_DNS"
    assert cluster_endpoints(cluster) == [rls_host_and_port()]


def test_istio_wasmplugin_reaches_tollgate_rls_through_the_sidecars_cluster():
    plugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    cluster = plugin["spec"]["pluginConfig"]["global_limits"]["cluster"]
    # Istio names a Service's cluster outbound|PORT|SUBSET|FQDN; a plugin cannot add its own.
    assert re.fullmatch(r"outbound\|8081\|\|tollgate-rls\.[a-z0-9-]+\.svc\.cluster\.local", cluster), \
        cluster
    host, port = rls_host_and_port()
    assert cluster == f"outbound|{port}||{host}"


def test_istio_wasmplugin_passes_istio_schema():
    crd = yaml.safe_load(ISTIO_CRD.read_text())
    plugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    group, version = plugin["apiVersion"].split("/")
    assert crd["spec"]["group"] == group
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    assert served["served"]
    schema = served["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert re.fullmatch(schema["properties"]["sha256"]["pattern"], plugin["spec"]["sha256"])
    assert schema["properties"]["sha256"]["pattern"] == ISTIO_SHA256
    unknown = set(plugin["spec"]) - set(schema["properties"])
    assert not unknown, f"fields Istio's schema does not know: {unknown}"
    jsonschema.validate(plugin["spec"], schema)
    # pluginConfig is free-form (tollgate's own schema checks it): the rest, field by field.
    rest = {key: value for key, value in plugin["spec"].items() if key != "pluginConfig"}
    assert not unknown_fields(rest, schema)
    assert "FAIL_RELOAD" in schema["properties"]["failStrategy"]["enum"]
    assert "SERVER" in schema["properties"]["match"]["items"]["properties"]["mode"]["enum"]


# Custom resources: kubernetes-validate knows only Kubernetes' own kinds (its CLI merely warns
# and passes on any other), so each group is checked where its schema is, or said not to be.
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "extensions.istio.io")
# The Prometheus Operator's kinds: test_prometheus_operator_resources_pass_their_crd_schemas.
PROMETHEUS_OPERATOR_GROUPS = ("monitoring.coreos.com",)
# No schema of cert-manager's CRDs is in the repository: test_certificates_are_what_the_pods_
# and_the_gateway_read checks what the other manifests rely on; `kubectl apply --dry-run=server`
# on a cluster with cert-manager installed is the schema check.
UNCHECKED_GROUPS = ("cert-manager.io",)


def api_group(doc: dict) -> str:
    return doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""


def test_k8s_manifests_pass_kubernetes_schemas():
    checked = set()
    for name, doc in MANIFESTS.items():
        if api_group(doc) in ISTIO_GROUPS + PROMETHEUS_OPERATOR_GROUPS + UNCHECKED_GROUPS:
            continue
        try:
            kubernetes_validate.validate(doc, "1.31.0", strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {e.message}")
        checked.add(name)
    assert {"k8s/sidecar/deployment.yaml:Deployment/invoice-validator",
            "k8s/sidecar/deployment.yaml:PodDisruptionBudget/invoice-validator",
            "k8s/sidecar/service.yaml:Service/invoice-validator",
            "k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy",
            "k8s/istio/workload.yaml:ServiceAccount/invoice-validator",
            "k8s/istio/workload.yaml:Deployment/invoice-validator",
            "k8s/istio/workload.yaml:Service/invoice-validator",
            "k8s/istio/workload.yaml:PodDisruptionBudget/invoice-validator"} <= checked


def test_every_custom_resource_is_checked_against_its_schema_or_known_not_to_be():
    """Istio's and the Prometheus Operator's kinds have their CRD here; the unchecked groups'
    kinds are indeed unknown to kubernetes-validate (were it to learn them, they should be
    checked). A kind of any other group fails test_k8s_manifests_pass_kubernetes_schemas: no
    schema found."""
    istio_kinds = {(crd["spec"]["group"], crd["spec"]["names"]["kind"]) for crd in istio_crds()}
    operator_kinds = {(crd["spec"]["group"], crd["spec"]["names"]["kind"])
                      for crd in prometheus_operator_crds()}
    for name, doc in MANIFESTS.items():
        group = api_group(doc)
        if group in ISTIO_GROUPS:
            assert (group, doc["kind"]) in istio_kinds, f"{name}: no Istio CRD for it here"
        elif group in PROMETHEUS_OPERATOR_GROUPS:
            assert (group, doc["kind"]) in operator_kinds, f"{name}: no CRD for it here"
        elif group in UNCHECKED_GROUPS:
            with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
                kubernetes_validate.validate(doc, "1.31.0", strict=True)


def prometheus_operator_crds() -> list[dict]:
    return [crd for path in sorted(PROMETHEUS_OPERATOR_CRDS.glob("*.yaml"))
            for crd in yaml.safe_load_all(path.read_text()) if crd]


def test_prometheus_operator_resources_pass_their_crd_schemas():
    """The PrometheusRule and the PodMonitors of k8s/monitoring/ against the served version of
    their CRD: the API server would refuse what the schema refuses, and prune (silently drop)
    fields it does not declare."""
    checked = set()
    for name, doc in MANIFESTS.items():
        if api_group(doc) not in PROMETHEUS_OPERATOR_GROUPS:
            continue
        group, version = doc["apiVersion"].split("/")
        (crd,) = [crd for crd in prometheus_operator_crds()
                  if (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (group, doc["kind"])]
        served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
        assert served["served"] and served["storage"], f"{name}: {version} is not served"
        schema = served["schema"]["openAPIV3Schema"]["properties"]["spec"]
        # Not jsonschema.validate: it first checks the schema itself, and one of its patterns
        # (`^(?i)(abort|warn)?$`, Go syntax) is no Python regex. No field here uses that one.
        jsonschema.Draft202012Validator(schema).validate(doc["spec"])
        assert not unknown_fields(doc["spec"], schema), name
        checked.add(doc["kind"])
    assert checked == {"PrometheusRule", "PodMonitor"}


def test_podmonitors_scrape_the_port_that_serves_envoy_stats():
    """The plain sidecar's PodMonitor names the Envoy container's `ops` port, whose listener
    routes /stats/prometheus to the admin API; both select the gateway's pods."""
    deployment = MANIFESTS["k8s/sidecar/deployment.yaml:Deployment/invoice-validator"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    sidecar = MANIFESTS["k8s/monitoring/podmonitor.yaml:PodMonitor/tollgate-envoy-sidecar"]
    istio = MANIFESTS["k8s/monitoring/podmonitor.yaml:PodMonitor/tollgate-istio-proxy"]
    for monitor in (sidecar, istio):
        assert selects(monitor["spec"]["selector"], labels)
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/stats/prometheus"
    (envoy,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == "envoy"]
    (endpoint,) = sidecar["spec"]["podMetricsEndpoints"]
    port = next(p["containerPort"] for p in envoy["ports"] if p["name"] == endpoint["port"])
    configmap = MANIFESTS["k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy"]
    bootstrap = yaml.safe_load(configmap["data"]["envoy.yaml"])
    (listener,) = [l for l in bootstrap["static_resources"]["listeners"]
                   if l["address"]["socket_address"]["port_value"] == port]
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"][0]["routes"]
    assert any(r["match"].get("path") == "/stats/prometheus" for r in routes)
    # Istio's sidecar declares Envoy's own stats port under this name.
    (endpoint,) = istio["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http-envoy-prom"


def test_compose_file_runs_tollgate_rls_on_a_throwaway_redis():
    services = compose_file()["services"]
    redis, rls, envoy = services["redis"], services["tollgate-rls"], services["envoy"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--save") + 1] == "" and "--appendonly" in command
    assert "volumes" not in redis
    # Only Envoy is published; Redis and tollgate-rls stay inside the compose network.
    assert "ports" not in redis and "ports" not in rls
    assert rls["build"] == {"context": ".", "dockerfile": "oci/rls.Dockerfile"}
    assert rls["environment"]["TOLLGATE_RLS_REDIS"] == "redis://redis:6379/0"
    assert "redis" in rls["depends_on"]
    assert "tollgate-rls" in envoy["depends_on"]
    listen = rls["command"][rls["command"].index("--listen") + 1]
    assert listen == "0.0.0.0:8081"

    bootstrap = yaml.safe_load((REPO / "envoy" / "envoy-compose.yaml").read_text())
    cluster = clusters(bootstrap)[plugin_of(bootstrap)["global_limits"]["cluster"]]
    assert cluster["type"] == "STRICT_DNS"
    assert cluster_endpoints(cluster) == [("tollgate-rls", int(listen.rsplit(":", 1)[1]))]


def test_compose_config_has_the_reference_consumers_and_products():
    """`make compose-config` swaps in fresh keys consumer by consumer and prints the
    reference's demo: both need the same consumers (ids, products, number of keys)."""
    reference = plugin_of(yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text()))
    compose = plugin_of(yaml.safe_load((REPO / "envoy" / "envoy-compose.yaml").read_text()))

    def shape(plugin: dict) -> list[tuple[str, str, int]]:
        return [(c["id"], c["product"], len(c["keys"])) for c in plugin["consumers"]]

    assert shape(compose) == shape(reference)
    assert compose["products"] == reference["products"]
    assert {k: v for k, v in compose["global_limits"].items() if k != "cluster"} == \
        {k: v for k, v in reference["global_limits"].items() if k != "cluster"}


def test_rls_image_builds_the_locked_service_and_runs_it_as_nonroot_on_distroless():
    dockerfile = (REPO / "oci" / "rls.Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", dockerfile, re.M)
    assert len(stages) == 2, stages
    (builder, name), (runtime, _) = stages
    # A Rust image new enough for the crate, on the Debian the runtime image is built from.
    version = re.fullmatch(r"rust:1\.(\d+)(?:\.\d+)?-bookworm", builder)
    assert version, builder
    needed = re.search(r'^rust-version = "1\.(\d+)"', (REPO / "crates" / "rls" / "Cargo.toml")
                       .read_text(), re.M)
    assert int(version.group(1)) >= int(needed.group(1))
    assert re.search(r"^RUN cargo build --release -p tollgate-rls --locked$", dockerfile, re.M)
    assert runtime.startswith("gcr.io/distroless/") and "debian12" in runtime
    assert re.search(rf"^COPY --from={name} /src/target/release/tollgate-rls /tollgate-rls$",
                     dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] in ("65532", "65532:65532"), \
        "a numeric non-root user, so Kubernetes' runAsNonRoot can check it"
    assert re.search(r'^ENTRYPOINT \["/tollgate-rls"\]$', dockerfile, re.M)
    assert re.search(r'^CMD \["--listen", "0\.0\.0\.0:8081"\]$', dockerfile, re.M)
    assert re.search(r"^EXPOSE 8081$", dockerfile, re.M)
    # Nothing secret is baked in.
    assert "TOLLGATE_RLS_REDIS" not in re.sub(r"^#.*$", "", dockerfile, flags=re.M)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching pattern wins; a
    pattern matching a parent directory matches everything under it)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for dockerfile in sorted((REPO / "oci").glob("*.Dockerfile")):
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile.read_text(), re.M):
            *sources, _ = line.split()
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name}: {source}"
                assert not dockerignored(source, patterns), f"{dockerfile.name} needs {source}"
    for heavy in ("target/release/tollgate-rls", "target/debug/tollgate", ".venv/bin/python",
                  ".git/HEAD", ".run/envoy.yaml"):
        assert dockerignored(heavy, patterns), heavy


# --- Who may call tollgate-rls: the NetworkPolicy and Istio's AuthorizationPolicy -------------

def gateway_deployment() -> dict:
    """The pods tollgate runs in with the plain sidecar: its Deployment (under Istio,
    k8s/istio/workload.yaml's pods, with the same labels and service account)."""
    return MANIFESTS["k8s/sidecar/deployment.yaml:Deployment/invoice-validator"]


def gateway_namespace() -> str:
    """Where the gateways run: the WasmPlugin's namespace (the sidecar's manifests name none)."""
    return MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]["metadata"]["namespace"]


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels only, as shipped) matches a pod's labels."""
    assert set(selector) == {"matchLabels"}, selector
    return selector["matchLabels"].items() <= labels.items()


def rls_grpc_port() -> int:
    """The container port tollgate-rls's Service sends calls to."""
    (container,) = rls_deployment()["spec"]["template"]["spec"]["containers"]
    (port,) = rls_service()["spec"]["ports"]
    return next(p["containerPort"] for p in container["ports"]
                if port["targetPort"] in (p["name"], p["containerPort"]))


def istio_crds() -> list[dict]:
    """Istio's CRDs at hand (tests/data/k8s-schemas/)."""
    return [crd for path in (ISTIO_CRD, ISTIO_SECURITY_CRDS, ISTIO_SERVICEENTRY_CRD)
            for crd in yaml.safe_load_all(path.read_text()) if crd]


def istio_schema(doc: dict) -> dict:
    """The spec schema Istio's API server checks a resource of this kind and version against."""
    group, version = doc["apiVersion"].split("/")
    for crd in istio_crds():
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == doc["kind"]:
            served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
            assert served["served"], f"{doc['apiVersion']} is not served"
            return served["schema"]["openAPIV3Schema"]["properties"]["spec"]
    raise AssertionError(f"no CRD for {doc['apiVersion']} {doc['kind']}")


def unknown_fields(value, schema: dict, path: str = "spec") -> list[str]:
    """Fields the schema does not declare. The API server would silently drop them (a CRD
    prunes unknown fields): a misspelt one would leave the policy wider than written."""
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def test_rls_networkpolicy_passes_kubernetes_schema():
    policy = MANIFESTS["k8s/rls/networkpolicy.yaml:NetworkPolicy/tollgate-rls"]
    try:
        kubernetes_validate.validate(policy, "1.31.0", strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(e.message)


def test_rls_networkpolicy_admits_only_the_gateways_to_the_grpc_port():
    policy = MANIFESTS["k8s/rls/networkpolicy.yaml:NetworkPolicy/tollgate-rls"]
    spec = policy["spec"]
    rls_labels = rls_deployment()["spec"]["template"]["metadata"]["labels"]
    gateway_labels = gateway_deployment()["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == rls_deployment()["metadata"]["namespace"]
    # It isolates tollgate-rls's pods (and no others) for incoming traffic.
    assert selects(spec["podSelector"], rls_labels)
    assert not selects(spec["podSelector"], gateway_labels)
    assert spec["policyTypes"] == ["Ingress"]
    # One rule: from the gateway pods of the gateways' namespace, to the gRPC port only.
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"namespaceSelector", "podSelector"}, "both, in one peer: an AND"
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": gateway_namespace()}}
    assert selects(peer["podSelector"], gateway_labels)
    assert not selects(peer["podSelector"], rls_labels)
    wasmplugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    assert peer["podSelector"] == wasmplugin["spec"]["selector"]
    (port,) = rule["ports"]
    assert port == {"protocol": "TCP", "port": rls_grpc_port()}
    # What the Service calls, and what Envoy's cluster reaches through it.
    assert rls_host_and_port()[1] == rls_service()["spec"]["ports"][0]["port"]


def test_rls_authorizationpolicy_passes_istio_schema():
    policy = MANIFESTS["k8s/rls/istio-authorizationpolicy.yaml:AuthorizationPolicy/tollgate-rls"]
    assert policy["apiVersion"] == "security.istio.io/v1"
    schema = istio_schema(policy)
    jsonschema.validate(policy["spec"], schema)
    assert not unknown_fields(policy["spec"], schema)
    # The CRD's x-kubernetes-validations (CEL, which jsonschema does not run), as they apply.
    spec = policy["spec"]
    assert sum(key in spec for key in ("selector", "targetRef", "targetRefs")) <= 1
    for key, value in spec["selector"]["matchLabels"].items():
        assert key and "*" not in key and "*" not in value
    for rule in spec["rules"]:
        for peer in rule.get("from", []):
            source = peer["source"]
            if "serviceAccounts" in source or "notServiceAccounts" in source:
                assert not {"principals", "notPrincipals", "namespaces", "notNamespaces"} & \
                    set(source)


def test_rls_authorizationpolicy_admits_only_the_gateways_identity():
    policy = MANIFESTS["k8s/rls/istio-authorizationpolicy.yaml:AuthorizationPolicy/tollgate-rls"]
    spec = policy["spec"]
    rls_labels = rls_deployment()["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == rls_deployment()["metadata"]["namespace"]
    assert selects(spec["selector"], rls_labels)
    # ALLOW with one rule: everything else, unauthenticated callers included, is refused.
    assert spec.get("action", "ALLOW") == "ALLOW"
    (rule,) = spec["rules"]
    (peer,) = rule["from"]
    # The service account of the pods tollgate runs in under Istio (k8s/istio/workload.yaml),
    # shipped with them, in the gateways' namespace; the plain sidecar's pods run as the same
    # name, so the policy holds for either.
    workload = MANIFESTS["k8s/istio/workload.yaml:Deployment/invoice-validator"]
    account = workload["spec"]["template"]["spec"]["serviceAccountName"]
    assert MANIFESTS[f"k8s/istio/workload.yaml:ServiceAccount/{account}"]["metadata"][
        "namespace"] == workload["metadata"]["namespace"] == gateway_namespace()
    assert gateway_deployment()["spec"]["template"]["spec"]["serviceAccountName"] == account
    assert f"k8s/sidecar/deployment.yaml:ServiceAccount/{account}" in MANIFESTS
    assert peer == {"source": {"principals": [
        f"cluster.local/ns/{gateway_namespace()}/sa/{account}"]}}
    (target,) = rule["to"]
    assert target == {"operation": {"ports": [str(rls_grpc_port())]}}
    assert "when" not in rule


def test_gateway_pods_have_their_own_identity():
    pod = gateway_deployment()["spec"]["template"]["spec"]
    account = MANIFESTS[f"k8s/sidecar/deployment.yaml:ServiceAccount/{pod['serviceAccountName']}"]
    assert pod["serviceAccountName"] != "default"
    assert account["automountServiceAccountToken"] is False
    assert "namespace" not in account["metadata"], "applied beside the Deployment, wherever it goes"


# --- HTTPS and retries: the sidecar's TLS Secret, cert-manager, Istio's Gateway and routes ---

def sidecar_bootstrap() -> dict:
    configmap = MANIFESTS["k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy"]
    return yaml.safe_load(configmap["data"]["envoy.yaml"])


def test_sidecar_serves_https_from_the_certificates_secret():
    deployment = gateway_deployment()
    pod = deployment["spec"]["template"]["spec"]
    envoy = next(c for c in pod["containers"] if c["name"] == "envoy")
    configmap = MANIFESTS["k8s/sidecar/configmap.yaml:ConfigMap/invoice-validator-envoy"]
    certificate = MANIFESTS["k8s/sidecar/certificate.yaml:Certificate/invoice-validator-tls"]
    bootstrap = sidecar_bootstrap()

    # The traffic listener reads its certificate through the ConfigMap's SDS file...
    traffic = next(p["containerPort"] for p in envoy["ports"] if p["name"] == "https")
    (listener,) = [l for l in bootstrap["static_resources"]["listeners"]
                   if l["address"]["socket_address"]["port_value"] == traffic]
    context = stack.downstream_tls(listener)["common_tls_context"]
    assert "tls_certificates" not in context, "read once at start: a renewal would need a restart"
    (sds,) = context["tls_certificate_sds_secret_configs"]
    config_mount = next(m for m in envoy["volumeMounts"] if m["name"] == "envoy-config")
    sds_path = sds["sds_config"]["path_config_source"]["path"]
    assert sds_path.startswith(config_mount["mountPath"] + "/")
    (secret,) = yaml.safe_load(configmap["data"][sds_path.rsplit("/", 1)[1]])["resources"]
    assert secret["name"] == sds["name"]
    served = secret["tls_certificate"]
    assert bootstrap["node"]["id"] and bootstrap["node"]["cluster"], "file-based SDS needs them"

    # ... which names the files of the Secret cert-manager writes, where the pod mounts it,
    # and watches the directory the kubelet swaps on a renewal.
    volume = next(v for v in pod["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    mount = next(m for m in envoy["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees the renewed files"
    assert served["certificate_chain"]["filename"] == f"{mount['mountPath']}/tls.crt"
    assert served["private_key"]["filename"] == f"{mount['mountPath']}/tls.key"
    assert served["watched_directory"]["path"] == mount["mountPath"]
    # The key is readable by Envoy's user through the pod's fsGroup, by no one else.
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]

    # Only the probes' port speaks plain HTTP, and it is what the probes use.
    plain = [l for l in bootstrap["static_resources"]["listeners"]
             if stack.downstream_tls(l) is None]
    assert [l["address"]["socket_address"]["port_value"] for l in plain] == [
        next(p["containerPort"] for p in envoy["ports"] if p["name"] == "ops")]
    assert not wasm_filters({"static_resources": {"listeners": plain}})

    # Callers reach the HTTPS port through a layer-4 load balancer that keeps their address.
    service = MANIFESTS["k8s/sidecar/service.yaml:Service/invoice-validator"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https")]


def test_certificates_are_what_the_pods_and_the_gateway_read():
    """cert-manager's Certificates, checked against the manifests that use their Secrets (no
    schema of cert-manager's CRD is at hand)."""
    sidecar = MANIFESTS["k8s/sidecar/certificate.yaml:Certificate/invoice-validator-tls"]
    istio = MANIFESTS["k8s/istio/certificate.yaml:Certificate/invoice-validator-tls"]
    gateway = MANIFESTS["k8s/istio/gateway.yaml:Gateway/invoice-validator"]
    for certificate in (sidecar, istio):
        assert certificate["apiVersion"] == "cert-manager.io/v1"
        issuer = certificate["spec"]["issuerRef"]
        assert issuer["group"] == "cert-manager.io"
        assert issuer["kind"] in ("Issuer", "ClusterIssuer") and issuer["name"]
        assert certificate["spec"]["privateKey"]["rotationPolicy"] == "Always"
    # The sidecar's Secret is in the pods' namespace: the manifest names none, as the
    # Deployment does.
    assert "namespace" not in sidecar["metadata"]
    # Istio reads credentialName from the gateway's pods' namespace (the AKS add-on's).
    assert gateway["spec"]["selector"] == {"istio": "aks-istio-ingressgateway-external"}
    assert istio["metadata"]["namespace"] == "aks-istio-ingress"
    (server,) = gateway["spec"]["servers"]
    assert server["tls"]["credentialName"] == istio["spec"]["secretName"]
    assert sorted(server["hosts"]) == sorted(istio["spec"]["dnsNames"]) == sorted(
        sidecar["spec"]["dnsNames"])
    text = (REPO / "k8s" / "sidecar" / "certificate.yaml").read_text()
    assert "kind: ClusterIssuer" in text and f"name: {sidecar['spec']['issuerRef']['name']}" in text


@pytest.mark.parametrize("name", ["k8s/istio/gateway.yaml:Gateway/invoice-validator",
                                  "k8s/istio/virtualservice.yaml:VirtualService/invoice-validator",
                                  "k8s/istio/virtualservice.yaml:DestinationRule/invoice-validator",
                                  "k8s/istio/entra-id.yaml:ServiceEntry/entra-id",
                                  "k8s/istio/entra-id.yaml:DestinationRule/entra-id"])
def test_istio_routing_passes_istio_schema(name):
    doc = MANIFESTS[name]
    assert doc["apiVersion"] == "networking.istio.io/v1"
    schema = istio_schema(doc)
    jsonschema.validate(doc["spec"], schema)
    assert not unknown_fields(doc["spec"], schema)
    # The CRD's x-kubernetes-validations (CEL) that apply: durations of at least 1 ms, one way
    # of naming a gateway's certificate.
    for route in doc["spec"].get("http", []):
        for duration in (route.get("timeout"), route.get("retries", {}).get("perTryTimeout")):
            assert duration is None or seconds(duration) >= 0.001
    for server in doc["spec"].get("servers", []):
        tls = server.get("tls", {})
        assert sum(key in tls for key in ("credentialName", "credentialNames",
                                          "tlsCertificates")) <= 1
    # A ServiceEntry's: ports from 1 to 65535, each number once; no "*" host; endpoints only
    # as its resolution allows (the shipped one has none).
    if doc["kind"] == "ServiceEntry":
        spec = doc["spec"]
        numbers = [port["number"] for port in spec["ports"]]
        assert len(numbers) == len(set(numbers))
        for port in spec["ports"]:
            assert all(0 < port[key] <= 65535 for key in ("number", "targetPort") if key in port)
        assert "*" not in spec["hosts"]
        assert "endpoints" not in spec and "workloadSelector" not in spec


def test_istio_gateway_serves_https_only():
    gateway = MANIFESTS["k8s/istio/gateway.yaml:Gateway/invoice-validator"]
    (server,) = gateway["spec"]["servers"]
    assert server["port"]["protocol"] == "HTTPS" and server["port"]["number"] == 443
    assert server["tls"]["mode"] == "SIMPLE"
    assert server["tls"]["minProtocolVersion"] in ("TLSV1_2", "TLSV1_3")
    assert "httpsRedirect" not in server["tls"]


def test_istio_routes_retry_idempotent_methods_only_as_the_envoy_route_does():
    service = MANIFESTS["k8s/istio/virtualservice.yaml:VirtualService/invoice-validator"]
    rule = MANIFESTS["k8s/istio/virtualservice.yaml:DestinationRule/invoice-validator"]
    gateway = MANIFESTS["k8s/istio/gateway.yaml:Gateway/invoice-validator"]
    # The reference's retrying route (the first; the second is the catch-all without retries).
    envoy_route = public_routes(yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text()))[0]
    envoy_policy = envoy_route["route"]["retry_policy"]
    envoy_methods = envoy_route["match"]["headers"][0]["string_match"]["safe_regex"]["regex"]

    spec = service["spec"]
    assert spec["gateways"] == [gateway["metadata"]["name"]]
    assert service["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    assert spec["hosts"] == gateway["spec"]["servers"][0]["hosts"]
    retrying, rest = spec["http"]
    # First route: the idempotent methods (an RE2 full match, as Envoy's safe_regex), retried
    # as the Envoy route retries them.
    (match,) = retrying["match"]
    assert set(match) == {"method"}
    methods = match["method"]["regex"]
    assert methods == envoy_methods
    assert {m for m in IDEMPOTENT_METHODS + OTHER_METHODS
            if re.fullmatch(methods, m)} == set(IDEMPOTENT_METHODS)
    retries = retrying["retries"]
    assert retries["attempts"] == envoy_policy["num_retries"] == 2
    assert seconds(retries["perTryTimeout"]) == seconds(envoy_policy["per_try_timeout"])
    assert set(retries["retryOn"].split(",")) == {"connect-failure", "reset", "503"}
    assert seconds(retrying["timeout"]) == seconds(envoy_route["route"]["timeout"])
    # Everything else: matched last, and explicitly not retried (Istio's default would).
    assert "match" not in rest
    assert rest["retries"] == {"attempts": 0}
    assert rest["route"] == retrying["route"]
    assert seconds(rest["timeout"]) == seconds(envoy_route["route"]["timeout"])
    # The retry budget of the destination, as the Envoy cluster's.
    (destination,) = retrying["route"]
    assert rule["spec"]["host"] == destination["destination"]["host"]
    assert rule["metadata"]["namespace"] == service["metadata"]["namespace"]
    bootstrap = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    (threshold,) = clusters(bootstrap)["backend"]["circuit_breakers"]["thresholds"]
    budget = threshold["retry_budget"]
    assert rule["spec"]["trafficPolicy"]["retryBudget"] == {
        "percent": budget["budget_percent"]["value"],
        "minRetryConcurrency": budget["min_retry_concurrency"]}



# --- Istio: the workload the WasmPlugin runs in, and the names that must agree ---------------

def istio_workload() -> tuple[dict, dict, dict]:
    """The FastAPI workload under Istio: its Deployment, Service and ServiceAccount."""
    return (MANIFESTS["k8s/istio/workload.yaml:Deployment/invoice-validator"],
            MANIFESTS["k8s/istio/workload.yaml:Service/invoice-validator"],
            MANIFESTS["k8s/istio/workload.yaml:ServiceAccount/invoice-validator"])


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_istio_workload_runs_the_app_where_the_sidecar_reaches_it():
    deployment, service, account = istio_workload()
    pod = deployment["spec"]["template"]["spec"]
    # Only the app: istio-proxy, injected by Istio, runs tollgate (no Envoy of our own).
    (app,) = pod["containers"]
    assert "initContainers" not in pod
    command = app["command"]
    assert command[:2] == ["uvicorn", "app:app"]
    # Istio's sidecar hands inbound requests to the pod's IP: an app on loopback gets none.
    assert option(command, "--host") == "0.0.0.0"
    port = int(option(command, "--port"))
    assert {"name": "http", "containerPort": port} in app["ports"]
    # Longer than the hour the sidecar keeps an idle connection to the app (Istio's default
    # inbound idle timeout), so the sidecar lets go first (docs/deploy-aks.md, "Idle
    # connections to the backend").
    assert int(option(command, "--timeout-keep-alive")) > 3600
    # The app's own health, which Istio's agent asks directly.
    assert app["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["resources"]["requests"] and app["resources"]["limits"]["memory"]
    security = app["securityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    # Its own identity (the mesh's), with no API token mounted.
    assert pod["serviceAccountName"] == account["metadata"]["name"] != "default"
    assert account["automountServiceAccountToken"] is False
    # The Service: port named `http` (Istio's protocol selection: HTTP, so the inbound side
    # has the HTTP connection manager a Wasm HTTP filter needs), to the app's port.
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    (service_port,) = service["spec"]["ports"]
    assert service_port["name"] == "http"
    assert service_port["targetPort"] in ("http", port)
    # Drains and upgrades keep one replica serving.
    budget = MANIFESTS["k8s/istio/workload.yaml:PodDisruptionBudget/invoice-validator"]
    assert selects(budget["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_istio_names_agree_across_workload_plugin_routes_and_policies():
    """One workload, named the same way everywhere: the WasmPlugin's selector, the Service's,
    the VirtualService's and DestinationRule's host and port, the NetworkPolicy's peer and the
    AuthorizationPolicy's principal all point at the pods of k8s/istio/workload.yaml."""
    deployment, service, account = istio_workload()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    namespace = deployment["metadata"]["namespace"]
    assert selects(deployment["spec"]["selector"], labels)
    # Everything of k8s/istio/ but the gateway's certificate lives in the workload's namespace.
    for name, doc in MANIFESTS.items():
        if name.startswith("k8s/istio/") and doc["kind"] != "Certificate":
            assert doc["metadata"]["namespace"] == namespace, name
    # The WasmPlugin runs in these pods' sidecars, and only the inbound side.
    plugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    assert selects(plugin["spec"]["selector"], labels)
    assert plugin["spec"]["match"] == [{"mode": "SERVER"}]
    # The Service selects them; the routes and the retry budget name the Service.
    assert service["spec"]["selector"].items() <= labels.items()
    host = f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    (service_port,) = service["spec"]["ports"]
    routes = MANIFESTS["k8s/istio/virtualservice.yaml:VirtualService/invoice-validator"]
    for route in routes["spec"]["http"]:
        (destination,) = route["route"]
        assert destination["destination"] == {"host": host,
                                              "port": {"number": service_port["port"]}}
    rule = MANIFESTS["k8s/istio/virtualservice.yaml:DestinationRule/invoice-validator"]
    assert rule["spec"]["host"] == host
    # Who may call tollgate-rls: these pods, by label and by mesh identity.
    network = MANIFESTS["k8s/rls/networkpolicy.yaml:NetworkPolicy/tollgate-rls"]
    (peer,) = network["spec"]["ingress"][0]["from"]
    assert selects(peer["podSelector"], labels)
    assert peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == namespace
    authorization = MANIFESTS[
        "k8s/rls/istio-authorizationpolicy.yaml:AuthorizationPolicy/tollgate-rls"]
    (source,) = authorization["spec"]["rules"][0]["from"]
    assert source["source"]["principals"] == [
        f"cluster.local/ns/{account['metadata']['namespace']}/sa/"
        f"{deployment['spec']['template']['spec']['serviceAccountName']}"]
    # The Istio PodMonitor scrapes these pods' sidecars.
    monitor = MANIFESTS["k8s/monitoring/podmonitor.yaml:PodMonitor/tollgate-istio-proxy"]
    assert selects(monitor["spec"]["selector"], labels)


def entra_cluster() -> str:
    """The sidecar cluster k8s/istio/entra-id.yaml makes: Istio names it
    outbound|PORT||HOST, PORT the ServiceEntry's port with TLS origination."""
    entry = MANIFESTS["k8s/istio/entra-id.yaml:ServiceEntry/entra-id"]
    rule = MANIFESTS["k8s/istio/entra-id.yaml:DestinationRule/entra-id"]
    (host,) = entry["spec"]["hosts"]
    (setting,) = rule["spec"]["trafficPolicy"]["portLevelSettings"]
    return f"outbound|{setting['port']['number']}||{host}"


def test_istio_entra_id_cluster_originates_tls_without_touching_the_apps_https():
    entry = MANIFESTS["k8s/istio/entra-id.yaml:ServiceEntry/entra-id"]
    rule = MANIFESTS["k8s/istio/entra-id.yaml:DestinationRule/entra-id"]
    (host,) = entry["spec"]["hosts"]
    assert host == "login.microsoftonline.com"
    assert entry["spec"]["location"] == "MESH_EXTERNAL"
    assert entry["spec"]["resolution"] in ("DNS", "DNS_ROUND_ROBIN")
    ports = {port["number"]: port for port in entry["spec"]["ports"]}
    # The filter sends plain HTTP to its cluster: the port it uses is HTTP to Istio, its
    # endpoints Entra's 443, and the DestinationRule adds TLS on that port, and that port only.
    (setting,) = rule["spec"]["trafficPolicy"]["portLevelSettings"]
    assert "tls" not in rule["spec"]["trafficPolicy"]
    origination = ports[setting["port"]["number"]]
    assert origination["protocol"] == "HTTP" and origination["targetPort"] == 443
    assert setting["tls"]["mode"] == "SIMPLE"
    assert setting["tls"]["sni"] == host and setting["tls"]["subjectAltNames"] == [host]
    assert not {"caCertificates", "insecureSkipVerify", "credentialName"} & set(setting["tls"])
    # The app's own HTTPS to Entra passes through untouched (no second TLS layer).
    assert ports[443]["protocol"] in ("HTTPS", "TLS") and "targetPort" not in ports[443]
    assert rule["spec"]["host"] == host
    # Visible to this namespace only.
    assert entry["spec"]["exportTo"] == rule["spec"]["exportTo"] == ["."]
    # The cluster name the filter's openid_config.cluster must carry, where users read it.
    cluster = entra_cluster()
    assert cluster == "outbound|80||login.microsoftonline.com"
    assert f"cluster: {cluster}" in (REPO / "k8s" / "istio" / "entra-id.yaml").read_text()
    assert cluster in (REPO / "docs" / "deploy-aks.md").read_text()
    assert cluster in (REPO / "k8s" / "istio" / "wasmplugin.yaml").read_text()


# --- The plain sidecar: workers, shutdown, readiness --------------------------------------

def test_sidecar_envoy_runs_two_workers_and_drains_on_shutdown():
    deployment = gateway_deployment()
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    envoy, app = containers["envoy"], containers["app"]
    # Two workers, not one per node CPU (each with its own VM and counters).
    assert option(envoy["args"], "--concurrency") == "2"
    # Draining closes every connection after its answer at once, and the listeners keep
    # accepting through the grace period (Envoy's default --drain-time-s, 600 s).
    assert option(envoy["args"], "--drain-strategy") == "immediate"
    assert "--drain-time-s" not in envoy["args"]
    script = envoy["lifecycle"]["preStop"]["exec"]["command"]
    assert script[:2] == ["/bin/bash", "-c"]
    bootstrap = sidecar_bootstrap()
    admin = bootstrap["admin"]["address"]["socket_address"]
    assert f"/dev/tcp/{admin['address']}/{admin['port_value']}" in script[2]
    assert "'/drain_listeners?graceful'" in script[2]
    # It waits for the requests of the traffic listener's connection manager.
    traffic = next(p["containerPort"] for p in envoy["ports"] if p["name"] == "https")
    (listener,) = [l for l in bootstrap["static_resources"]["listeners"]
                   if l["address"]["socket_address"]["port_value"] == traffic]
    prefix = listener["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"]
    assert f"http.{prefix}.downstream_rq_active" in script[2]
    # The grace period covers the preStop's longest wait (15 s, then at most 125 polls of
    # about a second) and so the route's timeout; the app stays up past the 15 s.
    longest = max(seconds(route["route"]["timeout"]) for route in public_routes(bootstrap))
    assert re.search(r"^sleep 15$", script[2], re.M) and "$(seq 125)" in script[2]
    assert 15 + longest <= 15 + 125 < pod["terminationGracePeriodSeconds"]
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": 20}}
    # Drains and upgrades keep one replica serving.
    budget = MANIFESTS["k8s/sidecar/deployment.yaml:PodDisruptionBudget/invoice-validator"]
    assert selects(budget["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert "namespace" not in budget["metadata"], "applied beside the Deployment"


def test_sidecar_app_readiness_goes_through_envoy_to_an_open_operation():
    """The app listens on loopback, which the kubelet cannot reach: its readiness probe asks
    Envoy's HTTPS port for an operation that needs no credential, so it passes only while
    Envoy, tollgate and the app all answer (test_https_and_retries.py sends it for real)."""
    pod = gateway_deployment()["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    probe = containers["app"]["readinessProbe"]["httpGet"]
    https = next(p["containerPort"] for p in containers["envoy"]["ports"] if p["name"] == "https")
    # A number: a port name would be looked up among the app container's own ports.
    assert probe["port"] == https and probe["scheme"] == "HTTPS"
    plugin = plugin_of(sidecar_bootstrap())
    (operation,) = [op for op in plugin["operations"] if op.get("path_template") == probe["path"]]
    assert operation.get("auth") == "none" and "GET" in operation["methods"]


def test_istio_bootstrap_override_in_the_docs_carries_the_sidecars_stats_tags():
    """The ConfigMap docs/deploy-aks.md prints for Istio's sidecar.istio.io/bootstrapOverride
    holds the metric labels' stats_tags of the tested sidecar bootstrap, and the annotation it
    prints names that ConfigMap. (Istio itself does not run here.)"""
    page = (REPO / "docs" / "deploy-aks.md").read_text()
    blocks = [textwrap.dedent(block) for block in re.findall(r"```yaml\n(.*?)```", page, re.S)]
    (configmap,) = [yaml.safe_load(b) for b in blocks if "custom_bootstrap.json" in b]
    override = json.loads(configmap["data"]["custom_bootstrap.json"])
    assert override == {"stats_config": {
        "stats_tags": sidecar_bootstrap()["stats_config"]["stats_tags"]}}
    (annotation,) = [yaml.safe_load(b) for b in blocks if "bootstrapOverride" in b]
    assert annotation["metadata"]["annotations"]["sidecar.istio.io/bootstrapOverride"] == \
        configmap["metadata"]["name"]
    assert configmap["metadata"]["namespace"] == istio_workload()[0]["metadata"]["namespace"]
