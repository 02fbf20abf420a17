ARG SRC=builder
FROM alpine:3.20 AS builder
RUN echo hi > /hi

FROM alpine:3.20
RUN --mount=from=$SRC,target=/x cat /x/hi
