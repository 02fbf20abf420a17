FROM nginx:1.27-alpine
ARG PORT=8080
COPY --chmod=0640 <<EOF /etc/nginx/conf.d/default.conf
server {
    listen ${PORT};
    location / { root /usr/share/nginx/html; }
}
EOF
COPY <<EOF /srv/
the file is named after the heredoc
EOF
EXPOSE ${PORT}
