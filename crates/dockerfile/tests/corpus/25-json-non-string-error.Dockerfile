FROM alpine:3.20
RUN echo fine
CMD ["sleep", 10]
