FROM debian:bookworm-slim
RUN apt-get update \
    # refresh package lists first
    && apt-get install -y --no-install-recommends \
        ca-certificates \

        curl \
 # an indented comment is dropped too
    && rm -rf /var/lib/apt/lists/*
LABEL description="multi \
line"
RUN echo "a # b" # shell sees this comment
