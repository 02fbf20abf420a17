FROM golang:1.22 AS builder
RUN go build -o /app .

FROM alpine:3.20 AS final
COPY --from=builder /app /app
