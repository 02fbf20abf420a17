FROM alpine:3.20 AS early
COPY --from=late /out /out

FROM alpine:3.20 AS late
RUN echo hi > /out

FROM early
