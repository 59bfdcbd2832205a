# SPDX-License-Identifier: Apache-2.0
#
# The jwtguard image: a static binary on an empty (scratch) base, run as
# the non-root user 65532, with the CA certificates it checks JWKS and
# Redis TLS servers against. The same image is built without Docker by
# examples/image_test.go (TestImage), which also keeps this file in step
# with it (TestDockerfile).
#
#   docker build -t jwtguard/jwtguard:0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git log -1 --format=%cI) .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Keep VERSION equal to appVersion in deploy/chart/jwtguard/Chart.yaml.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w \
        -X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.version=${VERSION} \
        -X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.revision=${REVISION} \
        -X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.date=${DATE}" \
      -o /out/jwtguard ./cmd/jwtguard \
 && mkdir -p /out/var-lib/jwtguard

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/jwtguard /usr/local/bin/jwtguard
# The working directory, writable by the user: the default --data-dir
# (./jwtguard-data) lands there. Kubernetes mounts a volume at it.
COPY --from=build --chown=65532:65532 /out/var-lib/ /var/lib/
WORKDIR /var/lib/jwtguard
USER 65532:65532
# 9191 gRPC ext_authz, 8181 HTTP (forward-auth, /healthz, /readyz,
# /metrics), 8182 admin API (loopback unless --admin-addr and a token).
EXPOSE 9191 8181 8182
LABEL org.opencontainers.image.title="jwtguard" \
      org.opencontainers.image.description="JWT revocation enforcement for Envoy ext_authz and forward-auth proxies" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/jwtguard/jwtguard" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/jwtguard"]
