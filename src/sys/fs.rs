//! Files and directories: `openat2` beneath a root, `fstat`/`fstatat`, and
//! `getdents64` for listings.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A path for a syscall: `EINVAL` if it holds a NUL byte.
pub(super) fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens a directory as an `O_PATH` handle, the anchor for `open_beneath`.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let fd = syscall!(open(
        c.as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC
    ))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct open_how` of openat2(2) (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `rel` (relative, no leading slash) under the directory `dir` read-only,
/// non-blocking (a FIFO must not stall a worker) and close-on-exec.
///
/// With `beneath`, `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` makes the kernel
/// refuse (EXDEV) any resolution, symbolic links included, that leaves `dir`.
/// Returns `ENOSYS` where the kernel lacks `openat2`.
pub fn open_at(dir: &OwnedFd, rel: &[u8], beneath: bool) -> io::Result<File> {
    let c = c_path(rel)?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    let fd = if beneath {
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: `how` is an initialised open_how of the size passed; `c` is NUL-terminated.
        syscall!(syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            mem::size_of::<OpenHow>(),
        ))? as RawFd
    } else {
        // SAFETY: `dir` is an open descriptor and `c` a NUL-terminated path.
        syscall!(openat(dir.as_raw_fd(), c.as_ptr(), flags))?
    };
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The parts of `struct stat` the file cache compares and the listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Hard links; 0 once the file has been deleted.
    pub nlink: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Status change time: seconds and nanoseconds.
    pub ctime: (i64, i64),
}

impl FileStat {
    fn from_raw(st: &libc::stat) -> FileStat {
        FileStat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size.max(0) as u64,
            mode: st.st_mode,
            nlink: st.st_nlink,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    // SAFETY: an all-zero stat is a valid value of the type; fstat overwrites it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is writable storage for one `stat`.
    syscall!(fstat(fd.as_raw_fd(), &mut st))?;
    Ok(FileStat::from_raw(&st))
}

/// `fstatat(2)` of `rel` (relative, non-empty) under the directory `dir`; a final
/// symbolic link is followed only with `follow`. The path is copied to the stack, so
/// a per-request check allocates nothing.
pub fn stat_at(dir: BorrowedFd<'_>, rel: &[u8], follow: bool) -> io::Result<FileStat> {
    let mut path = [0u8; 4096];
    if rel.is_empty() || rel.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if rel.len() >= path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    path[..rel.len()].copy_from_slice(rel);
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: an all-zero stat is a valid value of the type; fstatat overwrites it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` writable storage for one `stat`.
    syscall!(fstatat(
        dir.as_raw_fd(),
        path.as_ptr() as *const libc::c_char,
        &mut st,
        flags
    ))?;
    Ok(FileStat::from_raw(&st))
}

/// Reads the next entries of the open directory `dir` into `buf` with `getdents64(2)`;
/// returns the bytes filled, 0 at the end. Walk them with [`dirents`].
pub fn getdents(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for the length passed; getdents64 writes no more.
    let n = syscall!(syscall(
        libc::SYS_getdents64,
        dir.as_raw_fd(),
        buf.as_mut_ptr(),
        buf.len()
    ))?;
    Ok(n as usize)
}

/// The `(name, d_type)` of each `struct linux_dirent64` in bytes that [`getdents`]
/// filled. Parsed from bytes with bounds checks, so a short record ends the walk.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = (&[u8], u8)> {
    // d_ino (8), d_off (8), d_reclen (2), d_type (1), then the NUL-terminated name.
    const NAME: usize = 19;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes([*rest.get(16)?, *rest.get(17)?]) as usize;
        if len < NAME || len > rest.len() {
            return None;
        }
        let (rec, tail) = rest.split_at(len);
        rest = tail;
        let name = &rec[NAME..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some((&name[..end], rec[18]))
    })
}
