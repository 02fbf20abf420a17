FROM alpine:3.20
ARG GREETING=hello
RUN <<EOF
set -e
echo "$GREETING from heredoc"
apk add --no-cache curl
EOF
RUN cat <<EOF > /etc/motd
Welcome
EOF
