FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci

FROM node:20-alpine AS test
WORKDIR /app
RUN --mount=type=bind,from=deps,source=/app/node_modules,target=/app/node_modules \
    --mount=type=bind,source=.,target=/app/src \
    npm test

FROM alpine:3.20
RUN --mount=from=test,target=/t ls /t
