# syntax=docker/dockerfile:1
#
# ironlb's two images from one Dockerfile:
#
#   docker build --target ccm     -t ghcr.io/ironlb/ironlb-ccm:TAG .
#   docker build --target speaker -t ghcr.io/ironlb/ironlb-speaker:TAG .
#
# (`make image-docker` does both; `make image` builds the same images with
# no container engine, test/images.) Multi-arch with BuildKit:
#   docker buildx build --platform linux/amd64,linux/arm64 --target ccm ...
#
# Static Go binaries (CGO_ENABLED=0: no libc, nothing to patch in the image)
# on distroless/static: no shell, no package manager, just CA certificates,
# /etc/passwd and tzdata.

ARG GO_VERSION=1.26
ARG DISTROLESS=gcr.io/distroless/static-debian12

# The build runs on the builder's own platform and cross-compiles, which is
# fast; Go needs no emulation to target another architecture.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
# Set by BuildKit from --platform; empty (the builder's own) otherwise.
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
# Only what the two commands are built from, so that a change to the tests
# or the docs does not invalidate the build (test/manifests checks that
# every imported package is copied).
COPY cmd/ cmd/
COPY announcer/ announcer/
COPY api/ api/
COPY config/ config/
COPY ipam/ ipam/
COPY provider/ provider/
# The flags of `make build` (test/manifests checks they stay the same):
# -trimpath: no builder paths in the binaries (reproducible builds);
# -tags grpcnotrace: gobgp's grpc without x/net/trace, ~30 MB less speaker
# (docs/architecture.md). Plus -s -w: no symbol table or DWARF, a smaller
# image; panics still print function names and lines.
ENV CGO_ENABLED=0
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags grpcnotrace -ldflags="-s -w" -o /out/ ./cmd/ironlb-ccm ./cmd/ironlb-speaker

# ironlb-ccm talks only to the apiserver and serves HTTPS on 10258 (above
# 1024): it needs no privilege at all and runs as "nonroot" (65532).
FROM ${DISTROLESS}:nonroot AS ccm
LABEL org.opencontainers.image.title="ironlb-ccm" \
      org.opencontainers.image.description="ironlb's cloud-controller-manager: LoadBalancer addresses from your pools" \
      org.opencontainers.image.source="https://github.com/ironlb/ironlb"
COPY --from=build /out/ironlb-ccm /usr/local/bin/ironlb-ccm
USER 65532:65532
EXPOSE 10258
ENTRYPOINT ["/usr/local/bin/ironlb-ccm"]

# ironlb-speaker needs CAP_NET_RAW and CAP_NET_ADMIN, which Kubernetes only
# grants to uid 0 (see manifests/base/speaker.yaml): root, but with every
# other capability dropped by the pod spec.
FROM ${DISTROLESS}:latest AS speaker
LABEL org.opencontainers.image.title="ironlb-speaker" \
      org.opencontainers.image.description="ironlb's per-node speaker: announces LoadBalancer addresses (layer2, vip, bgp)" \
      org.opencontainers.image.source="https://github.com/ironlb/ironlb"
COPY --from=build /out/ironlb-speaker /usr/local/bin/ironlb-speaker
USER 0:0
EXPOSE 7472 7946 7946/udp
ENTRYPOINT ["/usr/local/bin/ironlb-speaker"]
