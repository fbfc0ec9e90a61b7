//! The HTTP and gRPC servers (being built).
