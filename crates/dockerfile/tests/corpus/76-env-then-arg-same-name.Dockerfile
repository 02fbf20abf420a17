FROM alpine:3.20
ENV MODE=prod
ARG MODE=dev
LABEL mode=$MODE
RUN echo "$MODE"
