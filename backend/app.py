"""Sample upstream for tollgate: the invoice service behind a Power Automate connector.

A real FastAPI service with pydantic models (an invoice with nested lines, optional fields, an
enum, a date and Decimal amounts), path and query parameters and a file upload, so the custom
connector `make connector` generates from its OpenAPI has real fields.

Every response also reports what the service received (method, path, query, headers), so the
demo and the integration tests can see exactly what tollgate forwarded: stripped keys, identity
headers, rewritten paths. Routes that are test plumbing (`/status/{code}`, the catch-all echo)
stay out of the OpenAPI: they are not the product's API, and a connector must not offer them.
"""

import asyncio
import hashlib
from datetime import date, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated

from fastapi import FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

app = FastAPI(
    title="Invoice Validator",
    version="1.1.0",
    description="Checks, lists and files supplier invoices. The sample backend of tollgate.",
)


# --- models -----------------------------------------------------------------------------------


class Currency(str, Enum):
    """ISO 4217 codes the service books in."""

    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"
    CHF = "CHF"
    SEK = "SEK"


class InvoiceStatus(str, Enum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    paid = "paid"
    rejected = "rejected"


class AttachmentKind(str, Enum):
    invoice_pdf = "invoice_pdf"
    receipt = "receipt"
    delivery_note = "delivery_note"
    other = "other"


class Supplier(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=120, examples=["Contoso Ltd"])
    vat_id: str | None = Field(None, max_length=20, description="VAT identification number.")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code.",
                         examples=["DE"])


class InvoiceLine(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    description: str = Field(min_length=1, max_length=200, examples=["Consulting, March"])
    quantity: int = Field(gt=0, le=1_000_000, examples=[3])
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2, examples=["120.00"])


class Invoice(BaseModel):
    """An invoice as a supplier sends it."""

    model_config = ConfigDict(str_strip_whitespace=True)

    invoice_id: str = Field(min_length=1, max_length=64, examples=["INV-1"])
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2,
                            description="Total to pay, in `currency`.", examples=["12.50"])
    currency: Currency
    due_date: date = Field(description="ISO date (YYYY-MM-DD).")
    po_number: str | None = Field(None, max_length=40, description="Purchase order number, if any.")
    supplier: Supplier | None = None
    lines: list[InvoiceLine] = Field(
        default_factory=list,
        description="Line items; when present their total must equal `amount`.")


class InvoiceRecord(Invoice):
    """An invoice as the service keeps it."""

    status: InvoiceStatus
    booked_on: date


class Received(BaseModel):
    """What the service received: tollgate's work made visible."""

    method: str
    path: str
    raw_path: str
    query: str
    headers: list[list[str]] = Field(description="[name, value] pairs, in order, repeats kept.")
    body_bytes: int


class ValidationResult(BaseModel):
    valid: bool
    problems: list[str]
    received: Received


class InvoiceResponse(InvoiceRecord):
    received: Received


class InvoiceList(BaseModel):
    items: list[InvoiceRecord]
    count: int
    received: Received


class Attachment(BaseModel):
    invoice_id: str
    attachment_id: str
    kind: AttachmentKind
    filename: str
    content_type: str
    size: int
    sha256: str
    note: str | None = None
    received: Received


class Health(BaseModel):
    status: str
    received: Received


# --- helpers ----------------------------------------------------------------------------------


def received(request: Request, body: bytes | None = b"") -> dict:
    """What the request looked like on arrival. `body=None` when the body was read as a form
    (the stream is consumed): then its size is the Content-Length."""
    if body is None:
        try:
            body_bytes = int(request.headers.get("content-length", "0"))
        except ValueError:
            body_bytes = 0
    else:
        body_bytes = len(body)
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
        "body_bytes": body_bytes,
    }


def lines_problem(invoice: Invoice) -> str | None:
    if not invoice.lines:
        return None
    total = sum((line.quantity * line.unit_price for line in invoice.lines), Decimal(0))
    total = total.quantize(Decimal("0.01"))
    if total != invoice.amount:
        return f"amount {invoice.amount} does not match the lines' total {total}"
    return None


def check_invoice(data: object) -> list[str]:
    """Every problem with an invoice body, as sentences a flow can show (never raises)."""
    if not isinstance(data, dict):
        return ["body must be a JSON object"]
    try:
        invoice = Invoice.model_validate(data)
    except ValidationError as error:
        return [
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        ]
    problem = lines_problem(invoice)
    return [problem] if problem else []


def fake_invoice(invoice_id: str) -> dict:
    """A made-up but stable invoice for an id: the service has no database."""
    seed = int.from_bytes(hashlib.sha256(invoice_id.encode()).digest()[:4], "big")
    statuses = list(InvoiceStatus)
    currencies = list(Currency)
    quantity = 1 + seed % 5
    unit_price = Decimal(100 + seed % 900) / 4
    unit_price = unit_price.quantize(Decimal("0.01"))
    return {
        "invoice_id": invoice_id,
        "amount": quantity * unit_price,
        "currency": currencies[seed % len(currencies)],
        "due_date": date(2026, 1, 1) + timedelta(days=seed % 365),
        "po_number": f"PO-{seed % 10000:04d}" if seed % 3 else None,
        "supplier": {"name": "Contoso Ltd", "vat_id": "DE123456789", "country": "DE"},
        "lines": [{"description": "Consulting", "quantity": quantity, "unit_price": unit_price}],
        "status": statuses[seed % len(statuses)],
        "booked_on": date(2025, 12, 1) + timedelta(days=seed % 30),
    }


def problem_response(request: Request, status: int, detail, body: bytes | None = None):
    content = {"detail": jsonable_encoder(detail), "received": received(request, body)}
    return JSONResponse(content, status_code=status)


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, error: RequestValidationError):
    """FastAPI's 422, plus what was received (every response of this service carries it)."""
    return problem_response(request, 422, error.errors())


@app.middleware("http")
async def backend_marker(request: Request, call_next):
    # A header for the gateway to remove: the demo strips it with `response_headers.remove`.
    response = await call_next(request)
    response.headers["x-backend"] = "fastapi"
    return response


# --- the API ----------------------------------------------------------------------------------


@app.get("/healthz", response_model=Health, summary="Health check", tags=["service"])
async def healthz(request: Request):
    return {"status": "ok", "received": received(request)}


@app.get("/status/{code}", include_in_schema=False)
async def status(code: int, request: Request):
    """Answers with the status asked for, so tests can see how upstream errors are counted."""
    return JSONResponse({"status": code, "received": received(request, b"")},
                        status_code=code if 200 <= code <= 599 else 400)


# Calls per name, so tests can tell a gateway's cached answer from one the backend made. At most
# MAX_COUNTED_NAMES names are kept, so no caller can grow this without bound.
CALLS: dict[str, int] = {}
MAX_COUNTED_NAMES = 1000


@app.get("/counted/{name}", include_in_schema=False)
async def counted(name: str, request: Request, cache_control: str | None = None):
    """Counts its calls per name; answers with `Cache-Control: <cache_control>` when asked."""
    if name in CALLS or len(CALLS) < MAX_COUNTED_NAMES:
        CALLS[name] = CALLS.get(name, 0) + 1
    response = JSONResponse({"name": name, "calls": CALLS.get(name, 0),
                             "consumer": request.headers.get("x-consumer-id")})
    if cache_control:
        response.headers["cache-control"] = cache_control
    return response


@app.get("/counted/{name}/calls", include_in_schema=False)
async def counted_calls(name: str):
    """How many times `/counted/{name}` was called, without counting this one."""
    return {"name": name, "calls": CALLS.get(name, 0)}


@app.post(
    "/api/v1/validate",
    response_model=ValidationResult,
    summary="Validate an invoice",
    tags=["invoices"],
    # The handler reads the raw body, so any body gets a 200 with its problems listed (a flow
    # shows them) rather than FastAPI's 422; the OpenAPI still describes the Invoice it expects.
    openapi_extra={"requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invoice"}}},
    }},
)
async def validate(request: Request):
    """Checks an invoice and lists every problem found; `valid` is true when there is none."""
    body = await request.body()
    try:
        data = await request.json() if body else {}
    except ValueError:
        data = None
    problems = check_invoice(data)
    return {"valid": not problems, "problems": problems, "received": received(request, body)}


@app.get("/api/v1/invoices", response_model=InvoiceList, summary="List invoices",
         tags=["invoices"])
async def list_invoices(
    request: Request,
    status: Annotated[InvoiceStatus | None, Query(description="Only invoices in this status.")] = None,
    due_before: Annotated[date | None, Query(description="Only invoices due before this date.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many invoices.")] = 10,
):
    """Lists the supplier invoices on file, newest first."""
    items = [fake_invoice(f"INV-{number}") for number in range(1000, 1000 - 200, -1)]
    if status is not None:
        items = [item for item in items if item["status"] == status]
    if due_before is not None:
        items = [item for item in items if item["due_date"] < due_before]
    items = items[:limit]
    return {"items": items, "count": len(items), "received": received(request)}


@app.post("/api/v1/invoices", response_model=InvoiceResponse, status_code=201,
          summary="Submit an invoice", tags=["invoices"])
async def create_invoice(invoice: Invoice, request: Request):
    """Files an invoice; it must pass every check `validate` makes."""
    body = await request.body()
    problem = lines_problem(invoice)
    if problem:
        return problem_response(
            request, 422, [{"type": "value_error", "loc": ["body", "lines"], "msg": problem}], body)
    record = invoice.model_dump() | {"status": InvoiceStatus.submitted,
                                     "booked_on": date.today()}
    return record | {"received": received(request, body)}


@app.get("/api/v1/invoices/{invoice_id}", response_model=InvoiceResponse,
         summary="Get an invoice", tags=["invoices"])
async def get_invoice(
    request: Request,
    invoice_id: Annotated[str, Path(min_length=1, max_length=64, examples=["INV-1"])],
):
    """One invoice by its id."""
    return fake_invoice(invoice_id) | {"received": received(request)}


@app.post("/api/v1/invoices/{invoice_id}/attachments", response_model=Attachment,
          status_code=201, summary="Attach a file to an invoice", tags=["invoices"])
async def upload_attachment(
    request: Request,
    invoice_id: Annotated[str, Path(min_length=1, max_length=64, examples=["INV-1"])],
    file: Annotated[UploadFile, File(description="The document: a PDF, an image, ...")],
    kind: Annotated[AttachmentKind, Form()] = AttachmentKind.invoice_pdf,
    note: Annotated[str | None, Form(max_length=200)] = None,
):
    """Stores a document with an invoice (the scanned original, a receipt, ...)."""
    content = await file.read()
    digest = hashlib.sha256(content).hexdigest()
    return {
        "invoice_id": invoice_id,
        "attachment_id": f"att-{digest[:12]}",
        "kind": kind,
        "filename": file.filename or "upload",
        "content_type": file.content_type or "application/octet-stream",
        "size": len(content),
        "sha256": digest,
        "note": note,
        "received": received(request, None),
    }


# --- test plumbing: last, so every route above wins -------------------------------------------


@app.get("/text/{code}", include_in_schema=False)
async def text(code: int):
    """A plain-text answer with the status asked for: not JSON, whatever it says."""
    return PlainTextResponse(f"plain text, status {code}", status_code=code if 200 <= code <= 599 else 400)


@app.get("/slow/{seconds}", include_in_schema=False)
async def slow(seconds: float):
    """Answers after `seconds` (at most 30): for Envoy's upstream timeout."""
    await asyncio.sleep(min(seconds, 30.0))
    return {"slept": seconds}


# An application in debug mode, as a FastAPI service is while it is being developed: an
# exception becomes a 500 whose body is the traceback, internal host names and all.
crash = FastAPI(debug=True)


@crash.api_route("/{path:path}", methods=["GET", "POST"])
async def crash_route(path: str):
    raise RuntimeError(
        f"cannot reach postgres://invoices-db.internal.svc.cluster.local:5432 for {path!r}")


app.mount("/crash", crash)


@app.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
async def echo(request: Request, path: str):
    body = await request.body()
    return JSONResponse({"echo": True, "received": received(request, body)})
