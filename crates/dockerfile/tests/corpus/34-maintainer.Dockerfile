FROM alpine:3.20
ARG TEAM=platform
MAINTAINER Jane Doe <jane@example.com> ($TEAM)
LABEL org.opencontainers.image.authors="$TEAM@example.com"
