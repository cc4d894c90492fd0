"""Fixtures: a real FastAPI backend and real Envoys running the freshly built tollgate.wasm.

Keys are made here, per run, and only their SHA-256 hashes go into the configuration, as they
would in production. Hashes are computed with Python's hashlib, independently of the filter.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import stack  # noqa: E402


def sha256_ref(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Keys:
    primary = secrets.token_hex(16)
    secondary = secrets.token_hex(16)
    portal = secrets.token_hex(16)

    @classmethod
    def all(cls) -> list[str]:
        return [cls.primary, cls.secondary, cls.portal]


def plugin_config(unmatched: str = "reject") -> dict:
    return {
        "subscription_key": {"header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"},
        "products": {
            "starter": {"rate_limit": {"calls": 100000, "renewal_period_s": 60}},
            "unlimited": {},
        },
        "consumers": [
            {"id": "invoice-flow", "product": "starter",
             "keys": [sha256_ref(Keys.primary), sha256_ref(Keys.secondary)]},
            {"id": "contoso-portal", "product": "unlimited", "keys": [sha256_ref(Keys.portal)]},
        ],
        "operations": [
            {"name": "validate", "methods": ["POST"], "path": "/validate",
             "auth": "subscription_key", "products": ["starter", "unlimited"],
             "rewrite": "/api/v1/validate",
             "request_headers": {"set": {"x-consumer-id": "{consumer}", "x-product": "{product}"},
                                 "remove": ["x-debug"]},
             "response_headers": {"remove": ["x-backend"],
                                  "set": {"x-served-by": "tollgate/{operation}"}}},
            {"name": "admin", "path_prefix": "/admin", "products": ["unlimited"],
             "rewrite": "/internal",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
            {"name": "items", "methods": ["GET"], "path_prefix": "/v1/items",
             "rewrite": "/api/v1/items"},
            {"name": "health", "methods": ["GET"], "path": "/healthz", "auth": "none",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
        ],
        "unmatched": unmatched,
    }


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def certificate(workdir) -> tuple[Path, Path]:
    """A throw-away certificate and key (what `make run` makes), for the shipped Envoy
    configurations that serve HTTPS."""
    return stack.make_certificate(workdir / "tls")


@pytest.fixture(scope="session")
def backend(workdir):
    server = stack.Backend(workdir)
    yield server
    server.stop()


def start_gateway(workdir: Path, backend, config: dict, name: str,
                  concurrency: int = 1, connection_manager: dict | None = None) -> stack.Envoy:
    """`connection_manager`: fields set on the HTTP connection manager of the reference config
    (`xff_num_trusted_hops`, say)."""
    envoy_config = stack.render_envoy_config(
        config,
        listen_port=stack.free_port(),
        admin_port=stack.free_port(),
        backend_port=backend.port,
    )
    if connection_manager:
        listener = envoy_config["static_resources"]["listeners"][0]
        listener["filter_chains"][0]["filters"][0]["typed_config"].update(connection_manager)
    return stack.Envoy(workdir, envoy_config, name=name, concurrency=concurrency)


@pytest.fixture(scope="session")
def gateway(workdir, backend):
    envoy = start_gateway(workdir, backend, plugin_config(), "gateway")
    yield envoy
    envoy.stop()
    log = envoy.log()
    assert "panicked" not in log, "the filter panicked during the run"
    for key in Keys.all():
        assert key not in log, "a subscription key reached Envoy's log"


@pytest.fixture(scope="module")
def gateway_pass(workdir, backend):
    envoy = start_gateway(workdir, backend, plugin_config(unmatched="pass"), "gateway-pass")
    yield envoy
    envoy.stop()
