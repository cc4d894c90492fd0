"""Every configuration the repository ships: Envoy bootstraps (envoy/, k8s ConfigMaps, the
compose setup), tollgate plugin configurations (inside those, and Istio WasmPlugins), the
docker compose file and the Envoy clusters global limits are counted through."""

from __future__ import annotations

import json
import re
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
    """(where, bootstrap) for every Envoy configuration shipped. A ConfigMap's other YAML
    files (the sidecar's SDS file) are not bootstraps: `configmap_files` has them."""
    found = [(str(p.relative_to(REPO)), yaml.safe_load(p.read_text()))
             for p in sorted((REPO / "envoy").glob("*.yaml"))]
    for name, doc in manifests():
        if doc.get("kind") == "ConfigMap":
            for key, text in doc.get("data", {}).items():
                if key.endswith((".yaml", ".yml")):
                    parsed = yaml.safe_load(text)
                    if "static_resources" in parsed:
                        found.append((f"{name}:{key}", parsed))
    return found


def configmap_files(where: str) -> dict[str, str]:
    """Every file of the ConfigMap a bootstrap came from (name -> text); none for a bootstrap
    from envoy/."""
    for name, doc in manifests():
        if where.startswith(f"{name}:"):
            return dict(doc.get("data", {}))
    return {}


def public_listeners(bootstrap: dict) -> list[dict]:
    """The listeners whose requests go through tollgate (the wasm filter, or the native module
    the tests can run instead): what callers reach."""
    def with_tollgate(listener: dict) -> bool:
        alone = {"static_resources": {"listeners": [listener]}}
        return bool(wasm_filters(alone)) or stack.uses_native_module(alone)
    return [listener for listener in bootstrap.get("static_resources", {}).get("listeners", [])
            if with_tollgate(listener)]


def connection_manager(listener: dict) -> dict:
    """The HTTP connection manager of a listener's (only) filter chain."""
    (chain,) = listener["filter_chains"]
    (network_filter,) = chain["filters"]
    return network_filter["typed_config"]


def public_routes(bootstrap: dict) -> list[dict]:
    """The routes of the (one) listener callers reach."""
    (listener,) = public_listeners(bootstrap)
    (virtual_host,) = connection_manager(listener)["route_config"]["virtual_hosts"]
    return virtual_host["routes"]


# The methods SPEC calls safe to retry (sent twice, they do what they do once), and methods
# that are not.
IDEMPOTENT_METHODS = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
OTHER_METHODS = ("POST", "PATCH", "CONNECT", "TRACE")


def seconds(duration: str) -> float:
    """A duration as Envoy's and Istio's YAML write it (40s, 1.5s, 250ms, 2m)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert match, duration
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def with_test_certificate(bootstrap: dict, files: dict[str, str], cert: Path, key: Path,
                          workdir: Path) -> dict:
    """The bootstrap serving `cert`/`key` wherever it serves TLS: certificate files named in
    the listener are replaced; an SDS file (path_config_source) is written to `workdir` from
    its shipped text in `files` (the ConfigMap's), with the certificate paths replaced and the
    watched directory the certificate's."""
    for listener in bootstrap.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            socket = chain.get("transport_socket")
            if socket is None:
                continue
            context = socket["typed_config"]["common_tls_context"]
            for certificate in context.get("tls_certificates", []):
                certificate["certificate_chain"]["filename"] = str(cert)
                certificate["private_key"]["filename"] = str(key)
            for sds in context.get("tls_certificate_sds_secret_configs", []):
                source = sds["sds_config"]["path_config_source"]
                name = Path(source["path"]).name
                resources = yaml.safe_load(files[name])
                for secret in resources["resources"]:
                    certificate = secret["tls_certificate"]
                    certificate["certificate_chain"]["filename"] = str(cert)
                    certificate["private_key"]["filename"] = str(key)
                    if "watched_directory" in certificate:
                        certificate["watched_directory"]["path"] = str(cert.parent)
                target = workdir / name
                target.write_text(yaml.safe_dump(resources))
                source["path"] = str(target)
    return bootstrap


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
