FROM alpine:3.20 AS checked
HEALTHCHECK --interval=10s CMD ["/usr/local/bin/check", "--quick"]

FROM checked
healthcheck none
