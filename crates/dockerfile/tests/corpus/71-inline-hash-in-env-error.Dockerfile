FROM alpine:3.20
ENV PORT=8080 # default port
