FROM alpine:3.20
RUN echo ok
FROM golang:1.22 AS build extra
