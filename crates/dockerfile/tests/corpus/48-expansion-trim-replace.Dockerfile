FROM alpine:3.20
ENV LIB=/usr/local/lib/libfoo.so.1.2 IMG=registry.example.com/team/app:1.2.3 CSV=a,b,c,b
ENV P1=${LIB#*/} P2=${LIB##*/} P3=${LIB%.*} P4=${LIB%%.*}
ENV R1=${CSV/b/X} R2=${CSV//b/X} R3=${IMG##*/} R4=${IMG%:*} R5=${CSV//,/}
WORKDIR /opt/${IMG##*/}
