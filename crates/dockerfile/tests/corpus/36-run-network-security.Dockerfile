FROM alpine:3.20
RUN --network=none echo offline
RUN --network=host wget -qO- http://127.0.0.1:8080/health
RUN --network=default apk add --no-cache curl
RUN --security=insecure cat /proc/self/status
RUN --security=sandbox echo sandboxed
RUN --network=none --security=sandbox --mount=type=tmpfs,target=/t echo all-flags
