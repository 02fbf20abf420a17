ARG IMAGE
FROM $IMAGE
RUN echo unreachable
