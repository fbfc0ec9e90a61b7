//! Alerting, as Prometheus's rule manager and notifier do it:
//!
//! ```text
//! rule files -> rules (parse, validate) -> load -> manager (a thread per group)
//!   group: PromQL over the store -> state (pending/firing/resolved) -> ALERTS series
//!          annotations via expand -> template (Go text/template subset)
//!   due alerts -> notify (Alertmanager API v2)
//!              -> route (built in: routes, groups, silences, inhibition -> webhooks)
//! ```

pub mod expand;
pub mod group;
pub mod load;
pub mod manager;
pub mod notify;
pub mod route;
pub mod rules;
pub mod state;
pub mod template;
pub mod unittest;
