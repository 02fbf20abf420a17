
# escape=`
FROM alpine:3.20
RUN echo first \
    second
