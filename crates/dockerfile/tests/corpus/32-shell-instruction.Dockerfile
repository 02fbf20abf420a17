FROM debian:bookworm-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl -fsSL https://example.com/install.sh | bash
CMD echo "$0 is bash"
SHELL ["/bin/sh", "-c"]
ENTRYPOINT exec /usr/local/bin/run
RUN ["echo", "exec form ignores SHELL"]
