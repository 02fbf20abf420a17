# escape=x
FROM alpine:3.20
RUN echo unreachable
