FROM alpine:3.20 AS one
RUN echo 1 > /one

FROM alpine:3.20
COPY --from=5 /one /one
