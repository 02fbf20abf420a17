FROM alpine:3.20
ENV APP_HOME /srv/my app
ENV A=1 B="two words" C='single $A' D=${A}x E="$B-suffix"
ENV F=a\ b G= H=$A$B
RUN env
