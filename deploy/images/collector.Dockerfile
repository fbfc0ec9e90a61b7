# sonde-collector's image. From the workspace root:
#   docker build -f deploy/images/collector.Dockerfile -t sonde-collector .
#
# Stage 1 builds the collector (release); stage 2 is distroless: the binary, glibc
# and CA certificates, no shell, running as the unprivileged user 65532 ("nonroot").
# It needs no capability: its ports are above 1024 and it writes only its data
# directory (the StatefulSet's volume, mounted at /var/lib/sonde).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sonde-collector --bin sonde-collector \
 && install -D target/release/sonde-collector /out/sonde-collector

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sonde-collector /usr/bin/sonde-collector
USER 65532:65532
WORKDIR /var/lib/sonde
EXPOSE 9090 4317 4318
ENTRYPOINT ["/usr/bin/sonde-collector"]
