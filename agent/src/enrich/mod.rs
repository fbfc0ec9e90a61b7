//! Enrichment: turning the kernel's numbers (cgroup ids, device numbers) into the
//! names people query by. The pod/container layer builds on `cgroups`.

pub mod cgroups;
pub mod containers;
pub mod disks;
pub mod pods;
pub mod workloads;
