//! The test harness itself: a Kamailio started by a test leaves no process behind, however the
//! test ends (its main process killed, the test panicking, a normal drop).
mod support;

use std::time::Duration;
use support::process::{group_alive, group_members};
use support::Stack;

fn pgid_of(stack: &Stack) -> libc::pid_t {
    stack.kamailio_pid().expect("kamailio started") as libc::pid_t
}

#[test]
fn killing_kamailios_main_process_leaves_no_worker_behind() {
    let stack = Stack::start("harness-kill9");
    let pgid = pgid_of(&stack);
    // Kamailio runs in a group of its own, with its workers in it.
    // SAFETY: getpgrp has no preconditions.
    assert_ne!(pgid, unsafe { libc::getpgrp() });
    let members = group_members(pgid);
    assert!(
        members.len() > 1,
        "kamailio's workers share its process group: {members:?}"
    );
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pgid, libc::SIGKILL) }, 0);
    // Give the orphaned workers time to notice (this is when they used to spin on EOF).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        group_alive(pgid),
        "workers outlive their main process unless the harness stops them"
    );
    drop(stack);
    assert!(
        !group_alive(pgid),
        "processes of group {pgid} left after drop: {:?}",
        group_members(pgid)
    );
}

#[test]
fn a_panicking_test_leaves_no_worker_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let stack = Stack::start("harness-panic");
        tx.send(pgid_of(&stack)).unwrap();
        panic!("the test fails while its stack runs");
    })
    .join();
    assert!(r.is_err());
    let pgid = rx.recv().unwrap();
    assert!(
        !group_alive(pgid),
        "processes of group {pgid} left after the panic: {:?}",
        group_members(pgid)
    );
}

#[test]
fn a_normal_stop_leaves_no_process_behind() {
    let mut stack = Stack::start("harness-drop");
    let pgid = pgid_of(&stack);
    stack.restart_kamailio();
    let restarted = pgid_of(&stack);
    assert_ne!(pgid, restarted);
    assert!(
        !group_alive(pgid),
        "the first kamailio's group is gone after a restart"
    );
    drop(stack);
    assert!(!group_alive(restarted));
}

#[test]
fn a_started_process_cannot_write_a_log_past_the_cap() {
    use support::process::{GroupChild, LOG_CAP_BYTES};
    let dir = support::repo()
        .join("target/e2e")
        .join(format!("harness-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("spin.log");
    // A writer that does not stop on its own, like a worker spinning on an error.
    let mut child = GroupChild::spawn(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("while :; do head -c 1048576 /dev/zero 2>/dev/null; done")
            .stdout(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    support::wait_for(
        || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) >= LOG_CAP_BYTES,
        Duration::from_secs(30),
        "the log to reach the cap",
    );
    std::thread::sleep(Duration::from_millis(200));
    let pgid = child.pgid();
    child.kill_group();
    let len = std::fs::metadata(&log).unwrap().len();
    assert_eq!(len, LOG_CAP_BYTES, "the log stops at the cap");
    assert!(!group_alive(pgid));
    let _ = std::fs::remove_dir_all(&dir);
}
