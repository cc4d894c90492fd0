"""An "edge" FastAPI service for `tollgate init` and `tollgate check --openapi`
(tests/integration/test_init.py), unlike the sample backend in every way an OpenAPI can differ:

- it lives under a root path: the FastAPI app documents `servers: [{"url": "/svc"}]` and is
  served mounted at /svc, so its backend paths are /svc + the OpenAPI path keys (the way a
  service behind a path-based ingress is deployed; `FastAPI(root_path=...)` is deprecated in
  current FastAPI and its `openapi()` leaves `servers` out);
- nested routers with prefixes (/v2 includes /orders and /regions);
- GET, PUT and DELETE on one path, and one function answering GET and POST (`api_route`: FastAPI
  gives both the same operationId);
- typed path parameters: int (`{order_id:int}`, so only digits match), UUID, an Enum, str;
- a literal segment beside a parameter: /v2/orders/export is declared after
  /v2/orders/{order_id}; FastAPI still answers it (the int convertor does not match `export`),
  and tollgate must too (literal segments win over parameters regardless of order);
- a route left out of the OpenAPI (`include_in_schema=False`);
- EDGE_EXTRA_ROUTE=1 at import adds POST /v2/orders/{order_id}/refund, for drift.

Every handler answers its function's name and what it received, so a test through the gateway
sees which handler ran and at which backend path.
"""

from __future__ import annotations

import os
from enum import Enum
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Mount

ROOT_PATH = "/svc"
EXTRA_ROUTE = os.environ.get("EDGE_EXTRA_ROUTE") == "1"


class Region(str, Enum):
    eu_west = "eu-west"
    us_east = "us-east"


def answer(handler: str, request: Request, **params: object) -> dict[str, object]:
    return {
        "handler": handler,
        "received": {"method": request.method, "path": request.url.path,
                     "query": request.url.query},
        "params": {name: str(value) for name, value in params.items()},
    }


orders = APIRouter(prefix="/orders", tags=["orders"])


@orders.get("")
def list_orders(request: Request, limit: int = 10) -> dict[str, object]:
    return answer("list_orders", request, limit=limit)


@orders.get("/{order_id:int}")
def get_order(order_id: int, request: Request) -> dict[str, object]:
    return answer("get_order", request, order_id=order_id)


@orders.put("/{order_id:int}")
def replace_order(order_id: int, request: Request) -> dict[str, object]:
    return answer("replace_order", request, order_id=order_id)


@orders.delete("/{order_id:int}")
def delete_order(order_id: int, request: Request) -> dict[str, object]:
    return answer("delete_order", request, order_id=order_id)


@orders.get("/export")
def export_orders(request: Request) -> dict[str, object]:
    return answer("export_orders", request)


@orders.get("/{order_id:int}/items/{item_id}")
def get_order_item(order_id: int, item_id: UUID, request: Request) -> dict[str, object]:
    return answer("get_order_item", request, order_id=order_id, item_id=item_id)


@orders.api_route("/search", methods=["GET", "POST"])
def search_orders(request: Request, q: str = "") -> dict[str, object]:
    return answer("search_orders", request, q=q)


if EXTRA_ROUTE:
    @orders.post("/{order_id:int}/refund")
    def refund_order(order_id: int, request: Request) -> dict[str, object]:
        return answer("refund_order", request, order_id=order_id)


regions = APIRouter(prefix="/regions", tags=["regions"])


@regions.get("/{region}")
def get_region(region: Region, request: Request) -> dict[str, object]:
    return answer("get_region", request, region=region.value)


v2 = APIRouter(prefix="/v2")


@v2.get("/files/{name}")
def get_file(name: str, request: Request) -> dict[str, object]:
    return answer("get_file", request, name=name)


@v2.get("/debug", include_in_schema=False)
def debug_dump(request: Request) -> dict[str, object]:
    return answer("debug_dump", request)


# Included once every route is declared (older FastAPI copies the routes at inclusion).
v2.include_router(orders)
v2.include_router(regions)

service = FastAPI(title="Edge orders", version="0.1.0", servers=[{"url": ROOT_PATH}])
service.include_router(v2)


@service.get("/healthz", tags=["service"])
def healthz(request: Request) -> dict[str, object]:
    return answer("healthz", request)


# What uvicorn serves: the service under its root path, nothing else.
app = Starlette(routes=[Mount(ROOT_PATH, app=service)])
