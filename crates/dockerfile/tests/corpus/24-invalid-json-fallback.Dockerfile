FROM alpine:3.20
CMD ['echo', 'single quotes are not JSON']
ENTRYPOINT [ "/bin/app" , ]
RUN ["echo", "exec form"]
RUN [ "sh", "-c", "echo \"nested\" $HOME" ]
RUN [echo, unquoted]
