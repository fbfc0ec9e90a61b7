//! The embedded, durable time-series store (being built; see FORMAT.md once written).
