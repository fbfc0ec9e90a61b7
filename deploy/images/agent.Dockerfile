# sonde-agent's image. From the workspace root:
#   docker build -f deploy/images/agent.Dockerfile -t sonde-agent .
#
# Stage 1 builds the eBPF programs (bpf-linker on Debian's LLVM 22, as
# `cargo xtask setup` installs it) and then the agent, which embeds them.
# Stage 2 is distroless: the binary, glibc and CA certificates; no shell.
#
# The agent runs as root (USER 0): loading BPF programs, reading /dev/kmsg and other
# processes' /proc entries need root with the capabilities the DaemonSet adds
# (deploy/base/agent/daemonset.yaml drops every other one and makes / read-only).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      protobuf-compiler libprotobuf-dev \
      llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
RUN rustup component add rust-src \
 && LLVM_PREFIX=$(llvm-config-22 --prefix) \
    cargo install bpf-linker --no-default-features --features llvm-22
WORKDIR /src
COPY . .
RUN cargo xtask build-ebpf \
 && cargo build --release --locked -p sonde-agent --bin sonde-agent \
 && install -D target/release/sonde-agent /out/sonde-agent

FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/sonde-agent /usr/bin/sonde-agent
USER 0
EXPOSE 9101 4317 4318
ENTRYPOINT ["/usr/bin/sonde-agent"]
