FROM nginx:1.27-alpine
ARG SIG=SIGQUIT
STOPSIGNAL $SIG
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 \
  CMD curl -fsS http://localhost/healthz || exit 1
