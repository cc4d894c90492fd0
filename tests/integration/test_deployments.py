"""The ways users run tollgate: Envoy configs, the AKS sidecar, Istio, docker compose.

No cluster and no Docker engine run on this machine: these tests load every shipped Envoy
configuration in a real Envoy (`--mode validate`, which runs the filter's on_configure), run
`tollgate check` on every shipped plugin configuration, and read the manifests."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import pytest
import yaml

import stack
from shipped import (REPO, envoy_bootstraps, manifests, plugin_configurations,
                     wasm_filters, with_local_module)

BOOTSTRAPS = envoy_bootstraps()
PLUGINS = plugin_configurations()
MANIFESTS = dict(manifests())


def test_everything_expected_is_shipped():
    wheres = [where for where, _ in BOOTSTRAPS]
    assert "envoy/envoy.yaml" in wheres
    assert "envoy/envoy-compose.yaml" in wheres
    assert any(w.startswith("k8s/sidecar/configmap.yaml") for w in wheres)
    assert any(w.startswith("k8s/istio/wasmplugin.yaml") for w, _ in PLUGINS)


@pytest.mark.parametrize("where,bootstrap", BOOTSTRAPS, ids=[w for w, _ in BOOTSTRAPS])
def test_every_shipped_envoy_config_validates(tmp_path, where, bootstrap):
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(with_local_module(bootstrap)))
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
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    traffic = next(p["containerPort"] for p in envoy["ports"] if p["name"] == "http")
    assert wasm_filters({"static_resources": {"listeners": [listeners[traffic]]}}), \
        "the traffic port goes through tollgate"
    assert "--host" in containers["app"]["command"]
    assert containers["app"]["command"][containers["app"]["command"].index("--host") + 1] == "127.0.0.1"


def test_istio_wasmplugin_carries_what_istio_needs():
    plugin = MANIFESTS["k8s/istio/wasmplugin.yaml:WasmPlugin/tollgate"]
    deployment = MANIFESTS["k8s/sidecar/deployment.yaml:Deployment/invoice-validator"]
    spec = plugin["spec"]
    assert plugin["apiVersion"].startswith("extensions.istio.io/")
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["url"].startswith("oci://")
    assert spec["sha256"]
    assert spec["selector"]["matchLabels"].items() <= deployment["spec"]["template"][
        "metadata"]["labels"].items()
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
