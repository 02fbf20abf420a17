FROM alpine:3.20
RUN echo ok
RUN --network=foo echo never
