# check=skip=all
# CHECK=error=true
FROM alpine:3.20
RUN echo unreachable
