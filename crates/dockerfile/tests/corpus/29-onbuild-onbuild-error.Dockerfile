FROM alpine:3.20
RUN echo ok
ONBUILD ONBUILD RUN echo nested
