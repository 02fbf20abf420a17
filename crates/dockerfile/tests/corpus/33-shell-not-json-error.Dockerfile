FROM alpine:3.20
SHELL /bin/bash -c
RUN echo unreachable
