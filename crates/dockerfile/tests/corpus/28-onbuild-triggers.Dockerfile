FROM node:20-alpine
WORKDIR /app
ONBUILD COPY package*.json ./
ONBUILD RUN npm ci
onbuild ARG BUILD_ENV=${MODE:-dev}
ONBUILD   COPY . .
