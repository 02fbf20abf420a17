FROM alpine:3.20
RUN echo before
RUN <<EOF
echo never closed
eof
