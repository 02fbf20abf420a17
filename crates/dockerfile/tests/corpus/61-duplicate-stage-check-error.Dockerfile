# check=error=true
FROM alpine:3.20 AS builder
RUN echo one

FROM alpine:3.20 AS builder
RUN echo two
