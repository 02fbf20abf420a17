ARG RUST_VERSION=1.87
FROM rust:${RUST_VERSION}-slim AS build
WORKDIR /usr/src/app
COPY Cargo.toml Cargo.lock ./
# Compile dependencies once with a placeholder main so the layer caches.
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && cargo build --release \
 && rm -rf src target/release/deps/app*
COPY src ./src
RUN touch src/main.rs && cargo build --release

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /usr/src/app/target/release/app /usr/local/bin/app
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/app"]
