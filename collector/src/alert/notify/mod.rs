//! Where alerts go: Alertmanager's API v2 (and the built-in router, `route`).

pub mod alertmanager;
pub mod http_post;
