"""A stand-in identity provider for the tests: OpenID discovery and a JWKS that the test can
change (rotate keys, fail), served by FastAPI under uvicorn like the backend."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
STATE = {"jwks": {"keys": []}, "fail": False, "fetches": 0}


@app.get("/tenant/v2.0/.well-known/openid-configuration")
async def discovery():
    return {"issuer": "https://idp.test/tenant/v2.0",
            "jwks_uri": "https://idp.test/tenant/discovery/v2.0/keys"}


@app.get("/tenant/discovery/v2.0/keys")
async def keys():
    STATE["fetches"] += 1
    if STATE["fail"]:
        return JSONResponse({"error": "unavailable"}, status_code=503)
    return STATE["jwks"]


@app.post("/_control")
async def control(request: Request):
    STATE.update(await request.json())
    return {"fetches": STATE["fetches"]}


@app.get("/_control")
async def read_control():
    return {"fetches": STATE["fetches"]}


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}
