# SYNTAX = docker/dockerfile:1
#Escape=`
# check=skip=JSONArgsRecommended;error=true
FROM alpine:3.20
ENV WIN_PATH=C:\data\logs PRICE=5`$
RUN echo hello `
    world
CMD echo $WIN_PATH
