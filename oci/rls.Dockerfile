# tollgate-rls, the rate-limit service of global limits, as an OCI image: built from the
# workspace with the locked dependencies, run as a non-root user on distroless (glibc, CA
# certificates for rediss:// such as Azure Cache for Redis on 6380; no shell, no package
# manager). Build from the repository root: docker build -f oci/rls.Dockerfile .
# The Redis URL comes from TOLLGATE_RLS_REDIS (a Kubernetes Secret), never from the image.

# Bookworm, like distroless/cc-debian12, so the binary needs no newer glibc than it finds.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace: cargo reads every member's manifest even to build one package.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src src
COPY crates crates
RUN cargo build --release -p tollgate-rls --locked

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tollgate-rls /tollgate-rls
# distroless' nonroot user, by number: Kubernetes' runAsNonRoot cannot check a user name.
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/tollgate-rls"]
CMD ["--listen", "0.0.0.0:8081"]
