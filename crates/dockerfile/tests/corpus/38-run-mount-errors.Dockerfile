FROM alpine:3.20 AS unused
RUN --mount=type=volume,target=/data echo never-dispatched

FROM alpine:3.20
RUN --mount=size=64m,type=tmpfs,target=/scratch echo fails
