FROM alpine:3.20
ENV SET=value EMPTY=
ENV A1=${SET:-def} A2=${EMPTY:-def} A3=${NOPE:-def}
ENV B1=${SET-def} B2=${EMPTY-def} B3=${NOPE-def}
ENV C1=${SET:+alt} C2=${EMPTY:+alt} C3=${NOPE:+alt}
ENV D1=${SET+alt} D2=${EMPTY+alt} D3=${NOPE+alt}
ENV E1=${NOPE:-${SET}-nested} E2="${NOPE:-two words}" E3=${SET:+$SET/$SET}
