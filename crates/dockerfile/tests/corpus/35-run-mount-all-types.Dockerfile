FROM alpine:3.20 AS assets
RUN mkdir -p /assets && echo data > /assets/file.txt

FROM alpine:3.20
ARG CACHE_NS=apk
RUN --mount=type=bind,from=assets,source=/assets,target=/mnt/assets,rw \
    --mount=type=tmpfs,target=/tmp/scratch,size=64m \
    --mount=type=secret,id=npmrc,dst=/root/.npmrc,required=true,mode=0400,uid=1000,gid=1000 \
    --mount=type=secret,id=API_TOKEN,env=API_TOKEN \
    --mount=type=ssh,id=default,destination=/run/ssh.sock,required \
    --mount=type=cache,id=${CACHE_NS}-cache,target=/var/cache/apk,sharing=private,mode=0755,uid=0,gid=0,ro=false \
    ls /mnt/assets && cat /root/.npmrc
