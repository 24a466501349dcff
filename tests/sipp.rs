//! sipp drives the INVITE / ACK / BYE flow of the sample config with the scenario shipped in the
//! repository (kamailio/sipp/flow.xml): every call succeeds, every 200 OK passes the scenario's
//! checks (focus Contact, MSRP answer, no real identity), overlapping joins get bob-2, bob-3, …
//! (multipart/mixed answers), and after the BYEs nobody is left in the conference.
//!
//! sipp (Debian package sip-tester) is installed by scripts/setup.sh (`make test` runs it first).
mod support;

use std::process::{Command, Stdio};
use support::{free_port, repo, Stack};

fn sipp_installed() {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "sipp is not installed: run scripts/setup.sh (or `make test`, which does)"
    );
}

/// The value of column `name` in the last row of sipp's statistics CSV.
fn stat(csv: &str, name: &str) -> String {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("CSV header").split(';').collect();
    let last: Vec<&str> = lines.next_back().expect("CSV rows").split(';').collect();
    let i = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    last[i].to_string()
}

fn run_flow(transport: &str, calls: u32) {
    sipp_installed();
    let stack = Stack::start(&format!("sipp-{transport}"));
    let dir = &stack.run_dir;
    let stats = dir.join("flow-stats.csv");
    let errors = dir.join("flow-errors.log");
    let log = dir.join("flow.log");
    let out = Command::new("sipp")
        .arg(format!("127.0.0.1:{}", stack.sip_port))
        .arg("-sf")
        .arg(repo().join("kamailio/sipp/flow.xml"))
        .args(["-t", transport, "-i", "127.0.0.1"])
        .args(["-p", &free_port().to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            "20",
            "-l",
            "10",
            "-d",
            "500",
        ])
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(&stats)
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .args(["-trace_logs", "-log_file"])
        .arg(&log)
        .current_dir(dir)
        .output()
        .expect("run sipp");
    let screen = String::from_utf8_lossy(&out.stdout);
    let errs = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp failed ({}):\n{}\n{errs}\n{}",
        out.status,
        screen.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&stats).expect("sipp statistics");
    assert_eq!(stat(&csv, "SuccessfulCall(C)"), calls.to_string(), "{csv}");
    assert_eq!(stat(&csv, "FailedCall(C)"), "0", "{csv}");

    // The scenario logs each 200 OK's Content-Type: with up to 10 calls joined at once, the
    // focus answered both kinds.
    let logged = std::fs::read_to_string(&log).expect("sipp log");
    let answers: Vec<&str> = logged.lines().filter(|l| l.starts_with("call ")).collect();
    assert_eq!(answers.len(), calls as usize, "{logged}");
    assert!(
        answers.iter().any(|l| l.contains("application/sdp")),
        "{logged}"
    );
    assert!(
        answers.iter().any(|l| l.contains("multipart/mixed")),
        "{logged}"
    );

    // Every BYE freed its participant.
    let (ok, stats) = stack.kamcmd(&["chat_alias.stats"]);
    assert!(ok, "{stats}");
    assert!(
        stats.lines().any(|l| l.trim() == "participants: 0"),
        "participants left after the BYEs:\n{stats}\n{}",
        stack.kamcmd(&["chat_alias.list"]).1
    );
}

#[test]
fn sipp_invite_ack_bye_flow_over_udp() {
    run_flow("u1", 40);
}

#[test]
fn sipp_invite_ack_bye_flow_over_tcp() {
    run_flow("t1", 40);
}
