# The filter for a plain Envoy sidecar (no Istio): an init container that copies the module into
# a shared emptyDir, since a FROM-scratch image has no `cp` to run. Built by `make oci`.
FROM busybox:1.37
COPY target/wasm32-wasip1/release/tollgate.wasm /tollgate.wasm
USER 65532:65532
ENTRYPOINT ["cp", "/tollgate.wasm", "/wasm/tollgate.wasm"]
