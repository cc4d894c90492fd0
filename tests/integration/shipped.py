"""Every configuration the repository ships: Envoy bootstraps (envoy/, k8s ConfigMaps, the
compose setup), tollgate plugin configurations (inside those, and Istio WasmPlugins), the
docker compose file and the Envoy clusters global limits are counted through."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import stack

REPO = stack.REPO


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[tuple[str, dict]]:
    """(file:kind/name, document) for every Kubernetes manifest under k8s/."""
    found = []
    for path in sorted((REPO / "k8s").rglob("*.yaml")):
        for doc in yaml_documents(path):
            name = f"{path.relative_to(REPO)}:{doc.get('kind')}/{doc['metadata']['name']}"
            found.append((name, doc))
    return found


def envoy_bootstraps() -> list[tuple[str, dict]]:
    """(where, bootstrap) for every Envoy configuration shipped."""
    found = [(str(p.relative_to(REPO)), yaml.safe_load(p.read_text()))
             for p in sorted((REPO / "envoy").glob("*.yaml"))]
    for name, doc in manifests():
        if doc.get("kind") == "ConfigMap":
            for key, text in doc.get("data", {}).items():
                if key.endswith((".yaml", ".yml")):
                    found.append((f"{name}:{key}", yaml.safe_load(text)))
    return found


def wasm_filters(bootstrap: dict) -> list[dict]:
    """The `config` blocks of every Wasm HTTP filter in a bootstrap."""
    blocks = []
    for listener in bootstrap.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                for http_filter in network_filter.get("typed_config", {}).get("http_filters", []):
                    typed = http_filter.get("typed_config", {})
                    if typed.get("@type", "").endswith("envoy.extensions.filters.http.wasm.v3.Wasm"):
                        blocks.append(typed["config"])
    return blocks


def plugin_configurations() -> list[tuple[str, str]]:
    """(where, JSON text) for every tollgate plugin configuration shipped."""
    found = []
    for where, bootstrap in envoy_bootstraps():
        for block in wasm_filters(bootstrap):
            found.append((where, block["configuration"]["value"]))
    for name, doc in manifests():
        if doc.get("kind") == "WasmPlugin":
            found.append((name, json.dumps(doc["spec"]["pluginConfig"])))
    return found


def with_local_module(bootstrap: dict) -> dict:
    """The bootstrap with every Wasm module path pointing at the freshly built .wasm."""
    for block in wasm_filters(bootstrap):
        block["vm_config"]["code"]["local"]["filename"] = str(stack.WASM)
    return bootstrap


def compose_file() -> dict:
    """docker-compose.yml."""
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def plugin_of(bootstrap: dict) -> dict:
    """The tollgate plugin configuration of a bootstrap with one Wasm filter."""
    (block,) = wasm_filters(bootstrap)
    return json.loads(block["configuration"]["value"])


def clusters(bootstrap: dict) -> dict[str, dict]:
    """The static clusters of a bootstrap, by name."""
    return {c["name"]: c for c in bootstrap.get("static_resources", {}).get("clusters", [])}


def cluster_endpoints(cluster: dict) -> list[tuple[str, int]]:
    """(address, port) of every endpoint of a static or DNS cluster."""
    return [(e["endpoint"]["address"]["socket_address"]["address"],
             e["endpoint"]["address"]["socket_address"]["port_value"])
            for group in cluster["load_assignment"]["endpoints"]
            for e in group["lb_endpoints"]]


def speaks_http2(cluster: dict) -> bool:
    """Whether Envoy talks HTTP/2 to the cluster, as a gRPC service needs."""
    options = cluster.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
    return (options.get("@type", "").endswith("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
            and "http2_protocol_options" in options.get("explicit_http_config", {}))
