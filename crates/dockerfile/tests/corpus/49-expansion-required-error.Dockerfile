ARG REGISTRY
FROM ${REGISTRY:?registry-mirror-required}/library/alpine:3.20
RUN echo unreachable
