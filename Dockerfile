FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p concierge

FROM debian:bookworm-slim
WORKDIR /app
COPY --from=build /src/target/release/concierge /usr/local/bin/concierge
COPY config /app/config
COPY prompts /app/prompts
STOPSIGNAL SIGTERM
ENTRYPOINT ["concierge"]
