FROM golang:1.22-alpine AS builder
WORKDIR /src
ENV GOCACHE=/root/.cache/go-build GOMODCACHE=/go/pkg/mod
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod,id=gomod,sharing=locked \
    go mod download
RUN --mount=type=bind,target=.,readonly \
    --mount=type=cache,target=/go/pkg/mod,id=gomod,sharing=locked \
    --mount=type=cache,target=$GOCACHE \
    go build -o /out/app ./...

FROM alpine:3.20
COPY --from=builder /out/app /usr/local/bin/app
CMD ["app"]
