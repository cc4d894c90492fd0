"""Sample upstream for tollgate: the invoice validator behind a Power Automate connector.

`POST /api/v1/validate` checks an invoice. Every response also reports what the service
received (method, path, query, headers), so the demo and the integration tests can see
exactly what tollgate forwarded: stripped keys, identity headers, rewritten paths.
"""

from datetime import date
from decimal import Decimal, InvalidOperation

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="invoice-validator", version="1.0.0")


def received(request: Request, body: bytes) -> dict:
    return {
        "method": request.method,
        "path": request.url.path,
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query": request.scope.get("query_string", b"").decode("latin-1"),
        # Every value of every header, in order, so repeated headers are visible.
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in request.scope["headers"]
        ],
        "body_bytes": len(body),
    }


def check_invoice(invoice: dict) -> list[str]:
    problems = []
    if not str(invoice.get("invoice_id", "")).strip():
        problems.append("invoice_id is required")
    try:
        amount = Decimal(str(invoice.get("amount")))
        if amount <= 0:
            problems.append("amount must be positive")
    except (InvalidOperation, ValueError):
        problems.append("amount must be a number")
    currency = str(invoice.get("currency", ""))
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        problems.append("currency must be an ISO 4217 code such as EUR")
    try:
        date.fromisoformat(str(invoice.get("due_date")))
    except ValueError:
        problems.append("due_date must be an ISO date (YYYY-MM-DD)")
    return problems


@app.post("/api/v1/validate")
async def validate(request: Request):
    body = await request.body()
    try:
        invoice = await request.json() if body else {}
    except ValueError:
        invoice = None
    problems = (
        check_invoice(invoice)
        if isinstance(invoice, dict)
        else ["body must be a JSON object"]
    )
    return {"valid": not problems, "problems": problems, "received": received(request, body)}


@app.middleware("http")
async def backend_marker(request: Request, call_next):
    # A header for the gateway to remove: the demo strips it with `response_headers.remove`.
    response = await call_next(request)
    response.headers["x-backend"] = "fastapi"
    return response


@app.get("/healthz")
async def healthz(request: Request):
    return {"status": "ok", "received": received(request, b"")}


@app.get("/status/{code}")
async def status(code: int, request: Request):
    """Answers with the status asked for, so tests can see how upstream errors are counted."""
    return JSONResponse({"status": code, "received": received(request, b"")},
                        status_code=code if 200 <= code <= 599 else 400)


@app.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
)
async def echo(request: Request, path: str):
    body = await request.body()
    return JSONResponse({"echo": True, "received": received(request, body)})
