FROM alpine:3.20
RUN << EOF
echo "a space after << is accepted"
EOF
RUN <<-'EOT' sh -x
	echo "quoted, chomped, with trailing words"
	EOT
