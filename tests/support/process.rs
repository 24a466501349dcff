//! Child processes the tests start (Kamailio, the relay), each in a process group of its own that
//! is stopped as a whole: Kamailio forks UDP/TCP workers, and when its main process dies those
//! workers keep running, spinning on `receive_fd(): EOF` and filling their log. So a test never
//! stops just the pid it started: it kills the group (pgid = that pid), reaps what is left and
//! waits, bounded, until the kernel knows no process of the group.
#![allow(dead_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Largest file a started process may write (its log): a worker spinning on an error writes
/// gigabytes in minutes. Past this size its writes fail (`EFBIG`) instead of filling the disk;
/// a normal run of any test writes well under 1 MiB.
pub const LOG_CAP_BYTES: u64 = 64 << 20;

/// How long [`GroupChild::stop`] waits for the main process after SIGTERM before it kills the
/// group, and how long it then waits for the group to be gone.
pub const TERM_WAIT: Duration = Duration::from_secs(5);
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// A started process that leads its own process group; dropping it stops the whole group.
pub struct GroupChild {
    child: Child,
    pgid: libc::pid_t,
    reaped: Option<ExitStatus>,
    /// The group was seen empty: never signal its pgid again (the number may be reused).
    gone: bool,
}

impl GroupChild {
    /// Starts `cmd` as the leader of a new process group (`setpgid(0, 0)` before exec), with
    /// files it writes capped at [`LOG_CAP_BYTES`].
    pub fn spawn(cmd: &mut Command) -> io::Result<GroupChild> {
        become_subreaper();
        cmd.process_group(0);
        // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
        // functions (setrlimit, signal); it touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                let cap = libc::rlimit {
                    rlim_cur: LOG_CAP_BYTES as libc::rlim_t,
                    rlim_max: LOG_CAP_BYTES as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &cap) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Past the cap a write fails with EFBIG instead of killing the writer (SIGXFSZ):
                // the test keeps its processes, only the log stops growing. An ignored
                // disposition survives exec.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id() as libc::pid_t;
        Ok(GroupChild {
            child,
            pgid,
            reaped: None,
            gone: false,
        })
    }

    /// The pid of the started process, which is also its process group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn pgid(&self) -> libc::pid_t {
        self.pgid
    }

    /// The main process's exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = Some(status);
            }
        }
        self.reaped
    }

    /// Sends `sig` to the main process only (e.g. SIGTERM, so Kamailio's main process stops its
    /// workers itself).
    pub fn signal(&self, sig: libc::c_int) {
        if self.reaped.is_none() && !self.gone {
            // SAFETY: kill(2) with the pid of a child we have not reaped, so it cannot be reused.
            unsafe {
                libc::kill(self.pgid, sig);
            }
        }
    }

    /// Stops the group: SIGTERM to the main process, up to `term_wait` for it to exit, then
    /// SIGKILL to every process of the group, and up to [`KILL_WAIT`] until none is left. Returns
    /// the main process's exit status if it exited within `term_wait`.
    pub fn stop(&mut self, term_wait: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + term_wait;
        let mut clean = None;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                clean = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_group();
        clean
    }

    /// SIGKILL to the whole group, then reaps the main process and any of its orphaned workers
    /// (this process is their subreaper) until the kernel reports the group empty or
    /// [`KILL_WAIT`] has passed.
    pub fn kill_group(&mut self) {
        if self.gone {
            return;
        }
        kill_group(self.pgid, libc::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while self.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        while group_alive(self.pgid) && Instant::now() < deadline {
            reap_group(self.pgid);
            kill_group(self.pgid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.gone = self.reaped.is_some() && !group_alive(self.pgid);
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.stop(TERM_WAIT);
    }
}

/// Whether any process (a zombie included) of group `pgid` exists: `kill(-pgid, 0)` is not ESRCH.
pub fn group_alive(pgid: libc::pid_t) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn kill_group(pgid: libc::pid_t, sig: libc::c_int) {
    // Never our own group: a pgid of ours would take the test runner with it.
    // SAFETY: getpgrp and kill(2) have no memory-safety preconditions.
    if pgid > 1 && pgid != unsafe { libc::getpgrp() } {
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Reaps every exited process of group `pgid` that is our child (orphaned workers are, since
/// this process is a subreaper).
fn reap_group(pgid: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a process group we started; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// Makes this test process the subreaper of everything it starts, so the workers of a Kamailio
/// whose main process died become our children and can be reaped (and so vanish from their
/// group) instead of waiting for whatever pid 1 does with zombies.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
        }
    });
}

/// The pids of every process in group `pgid`, read from /proc (for tests of the harness).
pub fn group_members(pgid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|s| s.parse::<libc::pid_t>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}
