FROM golang:1.22 AS 1builder
RUN go version
