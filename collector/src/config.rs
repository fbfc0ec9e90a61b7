//! Flags and config file (being built).
