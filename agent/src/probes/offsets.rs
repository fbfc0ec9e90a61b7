//! Kernel struct field offsets from the running kernel's BTF.
//!
//! C eBPF programs get these from CO-RE relocations; Rust has no equivalent yet,
//! so the agent resolves each field the programs read here and hands the numbers
//! to the programs as a read-only global (see `sonde_probe_abi::KernelOffsets`).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use sonde_probe_abi::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Resolves every offset the programs use; the error names the missing field.
pub fn resolve(btf_path: &Path) -> Result<KernelOffsets> {
    let btf = Btf::from_file(btf_path)
        .with_context(|| format!("reading BTF from {}", btf_path.display()))?;
    let off = |path: &str| field_offset(&btf, path);
    Ok(KernelOffsets {
        task_pid: off("task_struct.pid")?,
        task_tgid: off("task_struct.tgid")?,
        task_comm: off("task_struct.comm")?,
        task_cgroups: off("task_struct.cgroups")?,
        css_set_dfl_cgrp: off("css_set.dfl_cgrp")?,
        cgroup_kn: off("cgroup.kn")?,
        kernfs_node_id: off("kernfs_node.id")?,
        sock_cgroup: off("sock.sk_cgrp_data")? + off("sock_cgroup_data.cgroup")?,
        sock_protocol: off("sock.sk_protocol")?,
        request_q: off("request.q")?,
        request_bio: off("request.bio")?,
        request_cmd_flags: off("request.cmd_flags")?,
        request_data_len: off("request.__data_len")?,
        request_queue_disk: off("request_queue.disk")?,
        gendisk_major: off("gendisk.major")?,
        gendisk_first_minor: off("gendisk.first_minor")?,
    })
}

/// Byte offset of `struct.field`, looking through anonymous structs and unions.
fn field_offset(btf: &Btf, path: &str) -> Result<u32> {
    let (strukt, field) = path
        .split_once('.')
        .ok_or_else(|| anyhow!("bad field path {path}"))?;
    let types = btf
        .resolve_types_by_name(strukt)
        .with_context(|| format!("kernel BTF has no struct {strukt}"))?;
    for t in types {
        if let Type::Struct(s) = t {
            if let Some(bits) = find_member(btf, &s, field)? {
                if bits % 8 != 0 {
                    bail!("{path} is a bitfield; the probes cannot read it");
                }
                return Ok(bits / 8);
            }
        }
    }
    bail!("kernel BTF has no field {path}")
}

/// Bit offset of `field` within `s`, if present (directly or in an anonymous member).
fn find_member(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Result<Option<u32>> {
    for m in &s.members {
        if m.bitfield_size().is_some_and(|n| n != 0)
            && btf.resolve_name(m).ok().as_deref() == Some(field)
        {
            bail!("{field} is a bitfield; the probes cannot read it");
        }
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == field {
            return Ok(Some(m.bit_offset()));
        }
        if name.is_empty() {
            if let Type::Struct(inner) | Type::Union(inner) =
                strip_modifiers(btf, btf.resolve_chained_type(m)?)?
            {
                if let Some(bits) = find_member(btf, &inner, field)? {
                    return Ok(Some(m.bit_offset() + bits));
                }
            }
        }
    }
    Ok(None)
}

fn strip_modifiers(btf: &Btf, mut t: Type) -> Result<Type> {
    loop {
        t = match &t {
            Type::Typedef(x) => btf.resolve_chained_type(x)?,
            Type::Const(x) | Type::Volatile(x) | Type::Restrict(x) => {
                btf.resolve_chained_type(x)?
            }
            Type::TypeTag(x) => btf.resolve_chained_type(x)?,
            _ => return Ok(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads this machine's kernel BTF, which every supported host has.
    #[test]
    fn resolves_against_running_kernel() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("SKIPPED: no kernel BTF at {VMLINUX_BTF}");
            return;
        }
        let o = resolve(path).unwrap();
        // pid and tgid are adjacent pid_t fields in every kernel since 2.6.
        assert_eq!(o.task_tgid, o.task_pid + 4);
        assert!(o.task_cgroups > o.task_pid);
        assert_ne!(o.kernfs_node_id, 0, "id is never kernfs_node's first field");
        let btf = Btf::from_file(path).unwrap();
        let e = field_offset(&btf, "task_struct.no_such_field")
            .unwrap_err()
            .to_string();
        assert!(e.contains("task_struct.no_such_field"), "{e}");
    }
}
