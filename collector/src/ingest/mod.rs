//! Decoding and validating writes: OTLP and Prometheus remote_write (being built).
