ARG VERSION=1.2.3
ARG BASE=alpine
FROM ${BASE}:3.20 AS first
RUN echo "version is [$VERSION]"
LABEL v1="[$VERSION]"

FROM ${BASE}:3.20
ARG VERSION
LABEL v2="[$VERSION]"
ARG BASE=override
LABEL base=$BASE
COPY --from=first /etc/os-release /tmp/os-release
