FROM node:20-alpine AS frontend
WORKDIR /web
COPY web/ .
RUN npm ci && npm run build

FROM golang:1.22-alpine AS backend
WORKDIR /api
COPY api/ .
RUN CGO_ENABLED=0 go build -o /bin/api .

FROM alpine:3.20 AS docs
RUN echo "never needed" > /docs.txt

FROM nginx:1.27-alpine
COPY --from=frontend /web/dist /usr/share/nginx/html
COPY --from=backend /bin/api /usr/local/bin/api
COPY nginx.conf /etc/nginx/conf.d/default.conf
