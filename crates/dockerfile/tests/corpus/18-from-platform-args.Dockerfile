ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM golang:1.22-alpine AS build
ARG TARGETOS
ARG TARGETARCH
ENV GOOS=$TARGETOS GOARCH=$TARGETARCH
RUN echo "building on $BUILDPLATFORM for $TARGETOS/$TARGETARCH" > /log

FROM --platform=linux/arm64 alpine:${ALPINE_VERSION} AS armtools
RUN apk add --no-cache qemu-aarch64

FROM alpine:${ALPINE_VERSION}
COPY --from=build /log /log
