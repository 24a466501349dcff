//! The focus socket's system side: the process Kamailio forks for it, a socket file created 0600
//! whatever the umask, and the sender credentials of each datagram (`SO_PASSCRED` +
//! `SCM_CREDENTIALS`, unix(7)). The protocol is in `crate::focus_socket`.
use super::bindings as b;
use super::{guard, log, Level};
use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Announces the module's one extra process (mod_init).
pub fn register_process() -> Result<(), String> {
    // SAFETY: called in mod_init, where Kamailio accepts process registrations.
    if unsafe { b::ca_register_procs(1) } != 0 {
        return Err("cannot register the focus socket process".into());
    }
    Ok(())
}

/// Creates the socket: a stale socket file at `path` is replaced (anything else there is refused),
/// the file is born 0600 (umask 0177 during bind) and the kernel attaches the sender's
/// credentials to every datagram.
pub fn bind_private(path: &Path) -> io::Result<UnixDatagram> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // SAFETY: umask only changes this process's file creation mask; the main process runs no
    // other thread during child_init, and the previous mask is restored right after.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixDatagram::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let sock = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let on: c_int = 1;
    // SAFETY: SO_PASSCRED takes an int; the pointer and length describe `on`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const c_int).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// This process's uid (the default allowed sender).
pub fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Forks the focus socket's process (main process, child_init(PROC_MAIN)). The child serves `sock`
/// and never returns; the parent closes its copy.
pub fn fork_server(sock: UnixDatagram, allowed_uid: u32) -> Result<(), String> {
    ALLOWED_UID.store(allowed_uid, std::sync::atomic::Ordering::Relaxed);
    let fd = sock.into_raw_fd();
    // SAFETY: the description is a static C string; `server_body` matches the callback type.
    let pid =
        unsafe { b::ca_fork_process(c"chat_alias focus socket".as_ptr(), fd, Some(server_body)) };
    // SAFETY: the parent owns `fd` and no longer needs it (the child has its own copy).
    drop(unsafe { UnixDatagram::from_raw_fd(fd) });
    if pid < 0 {
        return Err("cannot fork the focus socket process".into());
    }
    Ok(())
}

static ALLOWED_UID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

unsafe extern "C" fn server_body(fd: c_int) {
    guard("focus socket process", (), || {
        // SAFETY: `fd` is the socket fork_server handed over, owned by this process from now on.
        let sock = unsafe { UnixDatagram::from_raw_fd(fd) };
        let Some(m) = super::exports::module() else {
            log(Level::Error, "focus socket: module not initialised");
            return;
        };
        log(Level::Info, "focus socket process ready");
        crate::focus_socket::serve(
            m,
            sock,
            ALLOWED_UID.load(std::sync::atomic::Ordering::Relaxed),
        )
    })
}

/// Refreshes this process's copy of Kamailio's configuration (log level and the like).
pub fn cfg_update() {
    // SAFETY: called in the focus process, whose config framework ca_fork_process initialised.
    unsafe { b::ca_cfg_update() }
}

/// One datagram as received.
pub struct Datagram {
    pub len: usize,
    /// The datagram did not fit the buffer.
    pub truncated: bool,
    /// The sender's uid, from the kernel (None: no credentials attached).
    pub uid: Option<u32>,
    /// The sender's bound path (None: unnamed or abstract, cannot be answered).
    pub from: Option<PathBuf>,
}

/// Receives one datagram with its sender's credentials (blocking).
pub fn recv_with_creds(sock: &UnixDatagram, buf: &mut [u8]) -> io::Result<Datagram> {
    // Room for one SCM_CREDENTIALS message, u64-aligned as cmsg headers need.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes buffers owned by this frame, valid for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut uid = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within msg_controllen;
    // an SCM_CREDENTIALS payload is one ucred, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_CREDENTIALS
                && (*c).cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::ucred>() as u32) as usize
            {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::ucred>());
                uid = Some(cred.uid);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let path_off = std::mem::size_of::<libc::sa_family_t>();
    let namelen = (msg.msg_namelen as usize).min(std::mem::size_of::<libc::sockaddr_un>());
    let from = if namelen > path_off && addr.sun_path[0] != 0 {
        let raw: Vec<u8> = addr.sun_path[..namelen - path_off]
            .iter()
            .map(|c| *c as u8)
            .take_while(|c| *c != 0)
            .collect();
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&raw)))
    } else {
        None
    };
    Ok(Datagram {
        len: n as usize,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        uid,
        from,
    })
}
