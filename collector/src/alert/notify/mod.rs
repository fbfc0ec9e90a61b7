//! Where alerts go: Alertmanager's API v2.

pub mod alertmanager;
mod http_post;
