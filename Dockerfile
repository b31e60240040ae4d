# gslbd container image: built from source in a Rust image, run from a distroless image as a
# non-root user. The binary carries the file capability cap_net_bind_service, so it can bind
# port 53 with only NET_BIND_SERVICE granted (docker run --cap-drop ALL --cap-add
# NET_BIND_SERVICE). deploy/ does without any capability: it lowers the pod's unprivileged
# port floor to 53 (the safe sysctl net.ipv4.ip_unprivileged_port_start).
#
#   docker build -t gslbd .
#   docker run --rm -p 5353:5353/udp gslbd demo        # not here: no Docker engine runs in CI

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The dist profile (fat LTO, one codegen unit): a 23% smaller binary than --release.
RUN cargo build --profile dist --locked --bin gslbd \
    && setcap cap_net_bind_service=+ep target/dist/gslbd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/gslbd /usr/local/bin/gslbd
# distroless "nonroot"
USER 65532:65532
# mimalloc gives freed memory back at once instead of when it next allocates much: a reload
# of a large zone then does not leave RSS at its peak (docs/performance.md, "Scale of the
# answer side"); the answer path's CPU is the same. Without transparent huge pages: memory
# given back in small pieces would otherwise split huge pages zeroed whole (RSS 3-20% lower,
# the answer path's CPU the same).
ENV MIMALLOC_PURGE_DELAY=0 MIMALLOC_ALLOW_THP=0
EXPOSE 53/udp 53/tcp 7946/udp 9153/tcp
ENTRYPOINT ["/usr/local/bin/gslbd"]
CMD ["run", "--config", "/etc/gslbd/gslbd.toml"]
