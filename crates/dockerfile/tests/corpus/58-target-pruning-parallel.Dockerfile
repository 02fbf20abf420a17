FROM alpine:3.20 AS base
RUN apk add --no-cache ca-certificates

FROM base AS lint
RUN echo lint

FROM golang:1.22 AS compile-a
RUN echo a > /a

FROM golang:1.22 AS compile-b
RUN echo b > /b

FROM base AS release
COPY --from=compile-a /a /a
COPY --from=compile-b /b /b

FROM release AS debug
RUN apk add --no-cache strace
