//! End-to-end through the `chat-alias-client` binary: scripted mode with `--json`, exit statuses,
//! refusals, SIGTERM → BYE, `ping`.
mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{repo, Stack};

const LOUNGE: &str = "sip:lounge@im.example.net";
const T: Duration = Duration::from_secs(10);

fn client_bin() -> std::path::PathBuf {
    let p = std::env::var("CHAT_ALIAS_CLIENT_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| repo().join("target/release/chat-alias-client"));
    assert!(
        p.exists(),
        "{} not found: run `make build` (make test does)",
        p.display()
    );
    p
}

/// A running client whose stdout lines are collected as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(stack: &Stack, args: &[&str], script: Option<&str>) -> Running {
        let mut cmd = Command::new(client_bin());
        cmd.arg("join")
            .args(args)
            .args(["--server", &format!("127.0.0.1:{}", stack.sip_port)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start chat-alias-client");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(s) = script {
            stdin.write_all(s.as_bytes()).unwrap();
        }
        // Closing stdin (EOF) ends the script: the client leaves after the last command.
        drop(stdin);
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a JSON event accepted by `pred`.
    fn wait_json(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let l = self
                .lines
                .recv_timeout(T)
                .unwrap_or_else(|_| panic!("no matching event; saw {:#?}", self.seen));
            self.seen.push(l.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if pred(&v) {
                    return v;
                }
            }
        }
    }

    /// Waits for the exit; returns (status, every JSON event printed).
    fn finish(mut self) -> (i32, Vec<Value>) {
        let status = self.child.wait().unwrap().code().unwrap_or(-1);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        let events = self
            .seen
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect();
        (status, events)
    }
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn scripted_json_conversation_between_two_processes() {
    let stack = Stack::start("cli-json");
    let mut a = Running::start(
        &stack,
        &[
            LOUNGE,
            "--identity",
            "sip:amy@example.com",
            "--alias",
            "amy",
            "--json",
        ],
        Some("/expect from b\nreply from a\n/expect bye from b\n"),
    );
    let joined = a.wait_json(|v| v["event"] == "joined");
    assert_eq!(joined["identity"]["display_name"], "amy");
    assert_eq!(joined["identity"]["uri"], "sip:anonymous@anonymous.invalid");
    assert_eq!(joined["modified"], false);

    // Over TCP, asking for the same alias.
    let b = Running::start(
        &stack,
        &[
            LOUNGE,
            "--identity",
            "sip:ben@example.com",
            "--alias",
            "amy",
            "--tcp",
            "--json",
        ],
        Some("# a comment\nfrom b\n/expect reply from a\n/msg amy bye from b\n"),
    );
    let (sa, ea) = a.finish();
    let (sb, eb) = b.finish();
    assert_eq!((sa, sb), (0, 0), "a: {ea:#?}\nb: {eb:#?}");

    let bj = of(&eb, "joined")[0];
    assert_eq!(bj["identity"]["display_name"], "amy-2");
    assert_eq!(bj["identity"]["uri"], "sip:anonymous2@anonymous.invalid");
    assert_eq!(bj["modified"], true);
    assert_eq!(bj["requested"]["display_name"], "amy");

    let am = of(&ea, "message");
    assert_eq!(am.len(), 2, "{ea:#?}");
    assert_eq!(am[0]["text"], "from b");
    assert_eq!(am[0]["private"], false);
    assert_eq!(am[0]["from"]["display_name"], "amy-2");
    assert_eq!(am[0]["to"]["uri"], LOUNGE);
    assert_eq!(am[1]["text"], "bye from b");
    assert_eq!(am[1]["private"], true);
    assert_eq!(am[1]["from"]["uri"], "sip:anonymous2@anonymous.invalid");

    let bm = of(&eb, "message");
    assert_eq!(bm.len(), 1, "{eb:#?}");
    assert_eq!(bm[0]["text"], "reply from a");
    assert_eq!(bm[0]["from"]["display_name"], "amy");

    let bs = of(&eb, "sent");
    assert_eq!(bs.len(), 2);
    assert_eq!(bs[1]["private"], true);
    assert_eq!(bs[1]["to"]["display_name"], "amy");
    for events in [&ea, &eb] {
        let last = events.last().unwrap();
        assert_eq!(last["event"], "left");
        assert_eq!(last["by"], "me");
        assert_eq!(last["code"], 200);
        assert!(of(events, "error").is_empty(), "{events:#?}");
    }
}

#[test]
fn refusals_script_errors_and_expect_timeouts_set_the_exit_status() {
    let stack = Stack::start("cli-status");
    // Refused: one JSON event with code and reason; exit 2.
    let r = Running::start(
        &stack,
        &[
            "sip:members-only@im.example.net",
            "--identity",
            "sip:alice@example.com",
            "--alias",
            "ali",
            "--json",
        ],
        Some("hello\n"),
    );
    let (s, ev) = r.finish();
    assert_eq!(s, 2);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["event"], "refused");
    assert_eq!(ev[0]["code"], 403);
    assert!(ev[0]["reason"].as_str().unwrap().contains("Forbidden"));

    // An /expect that is not met: an error event, then the client leaves; exit 1.
    let r = Running::start(
        &stack,
        &[
            LOUNGE,
            "--identity",
            "sip:eve@example.com",
            "--json",
            "--expect-timeout",
            "300",
        ],
        Some("/expect something that never comes\nnot sent\n"),
    );
    let (s, ev) = r.finish();
    assert_eq!(s, 1);
    let errs = of(&ev, "error");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["kind"], "expect");
    assert!(
        of(&ev, "sent").is_empty(),
        "the script stopped at the failed /expect"
    );
    assert_eq!(ev.last().unwrap()["event"], "left");

    // An unknown command: exit 1.
    let r = Running::start(
        &stack,
        &[LOUNGE, "--identity", "sip:eve@example.com", "--json"],
        Some("/frobnicate\n"),
    );
    let (s, ev) = r.finish();
    assert_eq!(s, 1);
    assert_eq!(of(&ev, "error")[0]["kind"], "command");
}

#[test]
fn sigterm_leaves_with_bye() {
    let stack = Stack::start("cli-sigterm");
    let mut r = Running::start(
        &stack,
        &[
            LOUNGE,
            "--identity",
            "sip:sig@example.com",
            "--alias",
            "sig",
            "--json",
        ],
        Some("/wait 60000\n"),
    );
    r.wait_json(|v| v["event"] == "joined");
    let pid = r.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let (s, ev) = r.finish();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s, 0);
    let last = ev.last().unwrap();
    assert_eq!(
        (&last["event"], &last["code"]),
        (&Value::from("left"), &Value::from(200))
    );
    // The alias is free again.
    let r2 = Running::start(
        &stack,
        &[
            LOUNGE,
            "--identity",
            "sip:other@example.com",
            "--alias",
            "sig",
            "--json",
        ],
        None,
    );
    let (_, ev) = r2.finish();
    assert_eq!(of(&ev, "joined")[0]["identity"]["display_name"], "sig");
}

#[test]
fn ping_answers_only_when_a_server_does() {
    let stack = Stack::start("cli-ping");
    for tcp in [false, true] {
        let mut c = Command::new(client_bin());
        c.args(["ping", "--server", &format!("127.0.0.1:{}", stack.sip_port)]);
        if tcp {
            c.arg("--tcp");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200 OK");
    }
    let out = Command::new(client_bin())
        .args([
            "ping",
            "--server",
            &format!("127.0.0.1:{}", support::free_port()),
            "--timeout",
            "500",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
