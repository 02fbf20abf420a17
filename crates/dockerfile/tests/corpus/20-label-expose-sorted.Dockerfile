FROM alpine:3.20
ARG VERSION=1.4.2
LABEL org.opencontainers.image.version=$VERSION \
      "com.example.description"="Metrics exporter" maintainer=ops@example.com
LABEL multi.word="a b" other=plain
EXPOSE 9100 443/tcp 53/udp 8080
