# fnhost runtime image: one statically linked (musl) binary on an empty base.
#
# Built by `cargo xtask image` (xtask/src/image.rs), which compiles fnhost for
# x86_64-unknown-linux-musl outside Docker, checks that the binary is static,
# and stages this build context:
#
#   fnhost                 the binary
#   ca-certificates.crt    the build machine's CA bundle (modules may be fetched
#                          over TLS from `source = { url, digest }`)
#   dirs/cache/, dirs/state/   empty directories, owned by the runtime user here
#
# Nothing here pulls a base image or compiles anything, so the image builds on
# a machine without registry access: `docker build -f Dockerfile <context>`.
FROM scratch

LABEL org.opencontainers.image.title="fnhost" \
      org.opencontainers.image.description="wasmtime host serving wasi:http components from a Spin manifest, with live updates" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY fnhost /usr/local/bin/fnhost
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Writable locations for the non-root user when the container is run without
# volumes; with --read-only (or Kubernetes readOnlyRootFilesystem) mount a
# tmpfs/emptyDir on /cache and /state.
COPY --chown=65532:65532 dirs/cache /cache
COPY --chown=65532:65532 dirs/state /state

ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    FNHOST_CACHE_DIR=/cache \
    FNHOST_STATE_DIR=/state

# Non-root (the "nonroot" uid/gid of distroless images); no shell, no package
# manager, nothing but the binary and the CA bundle.
USER 65532:65532
WORKDIR /app
EXPOSE 3000

ENTRYPOINT ["/usr/local/bin/fnhost"]
# Serve the manifest mounted at /app/spin.toml (its module and model paths are
# relative to it) on all interfaces; the admin listener keeps its default,
# 127.0.0.1:3001, unless --admin-listen is given.
CMD ["up", "--manifest", "/app/spin.toml", "--listen", "0.0.0.0:3000", "--cache-dir", "/cache"]
