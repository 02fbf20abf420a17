FROM alpine:3.20
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool-1.0.tar.gz /opt/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.13.2 /src/buildkit
ADD --unpack=true https://example.com/assets.tar.gz /srv/assets/
ADD --chown=1000:1000 --chmod=0640 --link config/ /etc/app/
ADD --exclude=*.md --exclude=docs/ vendor.tar.gz /vendor/
