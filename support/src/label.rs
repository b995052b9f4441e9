//! The SELinux label (extended attribute `security.selinux`) of an open file:
//! read from the file being replaced, set on its replacement, so that a
//! rewritten `/etc/shadow` keeps `shadow_t` on a system that enforces policy.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

const NAME: &std::ffi::CStr = c"security.selinux";
/// Linux's limit on the size of an extended attribute's value.
const MAX_SIZE: usize = 65536;

/// The label of `file`, or `None` when it has none or the filesystem keeps no
/// such attributes (no SELinux, or tmpfs without xattr support).
pub(crate) fn get(file: &File) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; 256];
    loop {
        // SAFETY: `NAME` is NUL-terminated, `value` is a live buffer of
        // `value.len()` bytes that the kernel writes at most that many into.
        let len = unsafe {
            libc::fgetxattr(
                file.as_raw_fd(),
                NAME.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len >= 0 {
            value.truncate(len as usize);
            return Ok(Some(value));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error().unwrap_or(0) {
            e if e == libc::ENODATA || e == libc::ENOTSUP || e == libc::EOPNOTSUPP => {
                return Ok(None)
            }
            libc::ERANGE if value.len() < MAX_SIZE => value.resize(value.len() * 4, 0),
            _ => return Err(error),
        }
    }
}

/// Gives `file` the label `value`.
pub(crate) fn set(file: &File, value: &[u8]) -> io::Result<()> {
    // SAFETY: `NAME` is NUL-terminated, `value` is a live buffer of
    // `value.len()` bytes that the kernel only reads.
    let result = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            NAME.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
