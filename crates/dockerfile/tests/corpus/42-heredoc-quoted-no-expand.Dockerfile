FROM alpine:3.20
ARG NAME=world
ENV GREETING=hello
COPY <<EOF /expanded.txt
$GREETING ${NAME}! "quotes stay" 'single too'
EOF
COPY <<'EOF' /literal-single.txt
$GREETING ${NAME}!
EOF
COPY <<"EOF" /literal-double.txt
$GREETING ${NAME}!
EOF
RUN <<'EOF'
echo "$GREETING is expanded by the shell anyway"
EOF
