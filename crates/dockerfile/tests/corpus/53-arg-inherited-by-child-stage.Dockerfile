FROM alpine:3.20 AS base
ARG APP_DIR=/opt/app
ENV APP_ENV=prod
WORKDIR $APP_DIR

FROM base AS child
RUN echo "$APP_DIR $APP_ENV"
WORKDIR $APP_DIR/sub
LABEL dir=$APP_DIR env=$APP_ENV

FROM alpine:3.20
COPY --from=child /opt/app /opt/app
LABEL dir="[$APP_DIR]"
