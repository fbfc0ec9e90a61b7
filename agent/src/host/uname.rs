//! `uname`: `node_uname_info`, the uname(2) strings as labels on a constant 1.

use std::ffi::CStr;

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, Sources};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Uname;

impl Collect for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&self, _: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        // SAFETY: an all-zero utsname is valid; uname(2) fills it.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: u is a valid, writable utsname.
        if unsafe { libc::uname(&mut u) } != 0 {
            return Err(Error::io("uname(2)", std::io::Error::last_os_error()));
        }
        let labels = [
            ("sysname", text(&u.sysname)),
            ("release", text(&u.release)),
            ("version", text(&u.version)),
            ("machine", text(&u.machine)),
            ("nodename", text(&u.nodename)),
            ("domainname", text(&u.domainname)),
        ];
        families::gauge(
            enc,
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            [(labels, 1.0)],
        )?;
        Ok(())
    }
}

/// A NUL-terminated utsname field; the kernel always terminates them.
fn text(field: &[libc::c_char]) -> String {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes = unsafe { std::slice::from_raw_parts(field.as_ptr().cast::<u8>(), field.len()) };
    match CStr::from_bytes_until_nul(bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_up_to_nul() {
        let field: Vec<libc::c_char> = b"Linux\0junk".iter().map(|&b| b as libc::c_char).collect();
        assert_eq!(text(&field), "Linux");
        let unterminated: Vec<libc::c_char> = b"abc".iter().map(|&b| b as libc::c_char).collect();
        assert_eq!(text(&unterminated), "abc");
    }
}
