FROM alpine:3.20
RUN <<-EOT
	set -e
		echo "indented with tabs"
    echo "spaces are kept"
	EOT
COPY <<-CONF /etc/app.conf
	[server]
	port = 8080
		CONF
