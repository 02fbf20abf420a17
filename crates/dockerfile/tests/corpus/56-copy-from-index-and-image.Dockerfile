FROM golang:1.22 AS build
RUN go version > /version.txt

FROM alpine:3.20
COPY --from=0 /version.txt /build-version.txt
COPY --from=busybox:1.36 /bin/busybox /bin/busybox
COPY --from=nginx:1.27-alpine /etc/nginx/nginx.conf /etc/nginx/nginx.conf
