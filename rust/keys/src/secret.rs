//! Secret bytes in their own anonymous mapping: `mlock`ed (never swapped), `MADV_DONTDUMP` (left out
//! of core dumps), zeroed with volatile writes before the pages go back to the kernel.
//!
//! The buffer is fixed-size and never reallocates, so no stale copy is left behind by growth (the
//! weak spot of `Vec` + `zeroize`). Debug output never shows the contents.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, Ordering};

use crate::error::KeyError;

/// A fixed-length secret in locked, non-dumpable memory, wiped on drop.
pub struct SecretBuf {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
    locked: bool,
}

// SAFETY: the buffer is uniquely owned; shared access is read-only (`expose`).
unsafe impl Send for SecretBuf {}
unsafe impl Sync for SecretBuf {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Overwrite `len` bytes at `ptr` with zeros in a way the optimizer may not remove.
///
/// # Safety
/// `ptr..ptr+len` must be valid for writes.
unsafe fn wipe(ptr: *mut u8, len: usize) {
    for i in 0..len {
        core::ptr::write_volatile(ptr.add(i), 0);
    }
    compiler_fence(Ordering::SeqCst);
}

#[cfg(test)]
thread_local! {
    /// Test hook: leave the mapping in place on drop so a test can read the wiped bytes.
    static KEEP_MAPPING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

impl SecretBuf {
    /// A zero-filled secret of `len` bytes (1..=64 KiB). Locking is best effort: see [`Self::locked`].
    pub fn zeroed(len: usize) -> Result<Self, KeyError> {
        if len == 0 || len > 64 * 1024 {
            return Err(KeyError::input("secret", "length must be 1..=65536 bytes"));
        }
        let page = page_size();
        let map_len = len.div_ceil(page) * page;
        // SAFETY: anonymous private mapping, no file; checked for MAP_FAILED below.
        let raw = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(KeyError::Memory("mmap failed for a secret buffer"));
        }
        let Some(ptr) = NonNull::new(raw.cast::<u8>()) else {
            return Err(KeyError::Memory("mmap returned null"));
        };
        // SAFETY: ptr/map_len is the mapping just created.
        let locked = unsafe { libc::mlock(raw, map_len) } == 0;
        #[cfg(target_os = "linux")]
        // SAFETY: page-aligned range inside our mapping. Failure only means the pages may be dumped.
        unsafe {
            libc::madvise(raw, map_len, libc::MADV_DONTDUMP);
        }
        Ok(Self {
            ptr,
            len,
            map_len,
            locked,
        })
    }

    /// Copy `bytes` into a new locked buffer. The caller remains responsible for wiping its copy.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut buf = Self::zeroed(bytes.len())?;
        buf.expose_mut().copy_from_slice(bytes);
        Ok(buf)
    }

    /// Whether `mlock` succeeded (it needs `RLIMIT_MEMLOCK` room or `CAP_IPC_LOCK`).
    pub fn locked(&self) -> bool {
        self.locked
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The secret bytes. Keep the borrow short and copy nothing out of it.
    pub fn expose(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes for the life of self.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn expose_mut(&mut self) -> &mut [u8] {
        // SAFETY: unique borrow of our own mapping.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Pointer to the first secret byte, for FFI that reads the secret in place.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        let raw = self.ptr.as_ptr();
        // SAFETY: the whole mapping is ours and still mapped.
        unsafe {
            wipe(raw, self.map_len);
            if self.locked {
                libc::munlock(raw.cast(), self.map_len);
            }
        }
        #[cfg(test)]
        if KEEP_MAPPING.with(|k| k.get()) {
            return;
        }
        // SAFETY: unmapping the mapping created in `zeroed`; nothing refers to it after drop.
        unsafe {
            libc::munmap(raw.cast(), self.map_len);
        }
    }
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBuf({} bytes, hidden)", self.len)
    }
}

/// Prevent the process from being dumped or ptrace-attached by non-root (`PR_SET_DUMPABLE` 0).
pub fn make_non_dumpable() -> Result<(), KeyError> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            return Err(KeyError::Memory("prctl(PR_SET_DUMPABLE, 0) failed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_hides() {
        let b = SecretBuf::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(b.expose(), &[7u8; 32]);
        assert_eq!(format!("{b:?}"), "SecretBuf(32 bytes, hidden)");
        assert!(b.locked(), "RLIMIT_MEMLOCK should allow one page");
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(SecretBuf::zeroed(0).is_err());
        assert!(SecretBuf::zeroed(1 << 20).is_err());
    }

    #[test]
    fn a_dropped_buffer_reads_zero() {
        let b = SecretBuf::from_slice(&[0xA5u8; 48]).unwrap();
        let (ptr, map_len) = (b.as_ptr(), b.map_len);
        // SAFETY: still alive here.
        assert!(unsafe { core::slice::from_raw_parts(ptr, 48) }
            .iter()
            .all(|&x| x == 0xA5));
        KEEP_MAPPING.with(|k| k.set(true));
        drop(b); // the real Drop: wipe + munlock, mapping kept by the test hook
        KEEP_MAPPING.with(|k| k.set(false));
        // SAFETY: the mapping was left in place by the hook, so reading it is defined.
        let after = unsafe { core::slice::from_raw_parts(ptr, map_len) };
        assert!(after.iter().all(|&x| x == 0), "secret bytes survived drop");
        // SAFETY: now release the mapping the hook kept.
        unsafe { libc::munmap(ptr as *mut libc::c_void, map_len) };
    }
}
