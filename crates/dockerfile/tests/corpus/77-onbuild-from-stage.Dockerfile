FROM alpine:3.20 AS base
ONBUILD RUN echo "trigger ran" > /trigger.txt
RUN echo base > /base.txt

FROM base
RUN cat /trigger.txt /base.txt
