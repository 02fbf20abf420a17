FROM node:20-alpine
WORKDIR /app
COPPY package.json ./
RUN npm ci
