FROM alpine:3.20 AS base
RUN echo one > /which

FROM base AS derived
RUN cat /which

FROM alpine:3.20 AS base
RUN echo two > /which

FROM alpine:3.20
COPY --from=base /which /which
COPY --from=derived /which /which-derived
