//! Embeds the eBPF object that `cargo xtask build-ebpf` leaves in the target
//! directory. Without it the agent still builds (a plain `cargo build` must work on
//! a machine without bpf-linker) and says at startup that its probes are missing.
//! `SONDE_EBPF_OBJECT` points at another object.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sonde_probes)");
    println!("cargo::rerun-if-env-changed=SONDE_EBPF_OBJECT");
    let object = match env::var_os("SONDE_EBPF_OBJECT") {
        Some(p) => PathBuf::from(p),
        None => {
            // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
            let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
            let target = out.ancestors().nth(4).unwrap().to_path_buf();
            target.join("bpfel-unknown-none/release/sonde-probes")
        }
    };
    println!("cargo::rerun-if-changed={}", object.display());
    let dest = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("sonde-probes.o");
    if object.is_file() {
        std::fs::copy(&object, &dest).expect("copying the eBPF object");
        println!("cargo::rustc-cfg=sonde_probes");
    } else {
        std::fs::write(&dest, b"").unwrap();
        println!(
            "cargo::warning=no eBPF object at {}: building sonde-agent without probes (run `cargo xtask build-ebpf`)",
            object.display()
        );
    }
}
