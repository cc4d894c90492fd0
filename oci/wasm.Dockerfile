# The filter as an OCI image Istio can pull (Istio's Wasm image spec, "compat" variant: one
# layer holding plugin.wasm). Built by `make oci` from the repository root after `make build`.
FROM scratch
COPY target/wasm32-wasip1/release/tollgate.wasm ./plugin.wasm
