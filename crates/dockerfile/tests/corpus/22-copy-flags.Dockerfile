FROM golang:1.22 AS build
RUN mkdir -p /out && echo hi > /out/app

FROM alpine:3.20
COPY --from=build --chown=1000:1000 --chmod=755 /out/app /usr/local/bin/app
COPY --chmod=u+x,g+x scripts/entry.sh /entry.sh
COPY --link --chmod=0644 config.yaml /etc/app/config.yaml
COPY --parents ./services/*/package.json /workspace/
COPY --exclude=*.test --exclude=**/testdata ./bin/ /opt/bin/
COPY ["with space.txt", "/dst dir/"]
