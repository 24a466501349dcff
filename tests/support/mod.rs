//! End-to-end harness: starts the real relay and a real Kamailio with chat_alias on loopback, with
//! ports and a run directory of their own, and stops them on drop. Plus a minimal SIP UAC.
#![allow(dead_code)]
pub mod answer;
pub mod msrp;
pub mod participant;
pub mod process;
pub mod sip;

use process::GroupChild;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn artifact(var: &str, default: &str) -> PathBuf {
    let p = std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(default));
    assert!(
        p.exists(),
        "{} not found: run the tests with `make test` (it builds the module and relay)",
        p.display()
    );
    p
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port")
}

#[derive(Clone)]
pub struct StackOptions {
    pub children: u32,
    pub dialog_timeout: u32,
    pub groups_dir: Option<PathBuf>,
    pub relay_timeout_ms: u32,
    pub max_participants: u32,
    /// The Kamailio configuration file (None: kamailio/kamailio.cfg).
    pub config: Option<PathBuf>,
    /// Extra `-A NAME=VALUE` defines, after the harness's own (e.g. the KEMI script's path).
    pub defines: Vec<(String, String)>,
    /// Extra arguments for the relay (e.g. `--max-size 65536`).
    pub extra_relay_args: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            children: 2,
            dialog_timeout: 43200,
            groups_dir: None,
            relay_timeout_ms: 1000,
            max_participants: 8192,
            config: None,
            defines: Vec::new(),
            extra_relay_args: Vec::new(),
        }
    }
}

pub struct Stack {
    pub name: String,
    pub sip_port: u16,
    pub msrp_port: u16,
    pub run_dir: PathBuf,
    pub groups_dir: PathBuf,
    pub ctl: String,
    kamailio: Option<GroupChild>,
    kamailio_args: Vec<String>,
    relay: Option<GroupChild>,
}

impl Stack {
    pub fn start(name: &str) -> Stack {
        Stack::start_with(name, StackOptions::default())
    }

    pub fn start_with(name: &str, opts: StackOptions) -> Stack {
        let module = artifact("CHAT_ALIAS_MODULE", "target/release/chat_alias.so");
        // Both artifacts are checked before anything starts.
        artifact("CHAT_ALIAS_RELAY_BIN", "target/release/chat-alias-relay");
        let run_dir = repo()
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).unwrap();
        let groups_dir = opts
            .groups_dir
            .clone()
            .unwrap_or_else(|| repo().join("kamailio/groups"));
        let sip_port = free_port();
        let mut msrp_port = free_port();
        while msrp_port == sip_port {
            msrp_port = free_port();
        }
        let relay_sock = run_dir.join("relay.sock");
        let ctl_sock = run_dir.join("kamailio_ctl");
        let mut stack = Stack {
            name: name.to_string(),
            sip_port,
            msrp_port,
            run_dir: run_dir.clone(),
            groups_dir: groups_dir.clone(),
            ctl: format!("unix:{}", ctl_sock.display()),
            kamailio: None,
            kamailio_args: Vec::new(),
            relay: None,
        };
        stack.spawn_relay(&opts.extra_relay_args, "start");
        let define = |k: &str, v: String| ["-A".to_string(), format!("{k}={v}")];
        let config = opts
            .config
            .clone()
            .unwrap_or_else(|| repo().join("kamailio/kamailio.cfg"));
        let mut args: Vec<String> = vec![
            "-f".into(),
            config.to_string_lossy().into_owned(),
            "-DD".into(),
            "-E".into(),
            // The shared memory allocator `make run` uses (scripts/run-stack.sh); the size is
            // the tests' own, small: they never hold many transactions at once.
            "-x".into(),
            "tlsf".into(),
            "-m".into(),
            "96".into(),
            "-M".into(),
            "16".into(),
            "-Y".into(),
            run_dir.to_string_lossy().into_owned(),
        ];
        args.extend(define("SIP_PORT", sip_port.to_string()));
        args.extend(define("CHILDREN", opts.children.to_string()));
        args.extend(define("MODULE_PATH", format!("\"{}\"", module.display())));
        args.extend(define(
            "GROUPS_DIR",
            format!("\"{}\"", groups_dir.display()),
        ));
        args.extend(define(
            "RELAY_SOCKET",
            format!("\"{}\"", relay_sock.display()),
        ));
        args.extend(define(
            "CTL_SOCKET",
            format!("\"unix:{}\"", ctl_sock.display()),
        ));
        args.extend(define("DIALOG_TIMEOUT", opts.dialog_timeout.to_string()));
        args.extend(define(
            "RELAY_TIMEOUT_MS",
            opts.relay_timeout_ms.to_string(),
        ));
        args.extend(define(
            "MAX_PARTICIPANTS",
            opts.max_participants.to_string(),
        ));
        for (k, v) in &opts.defines {
            args.extend(define(k, v.clone()));
        }
        stack.kamailio_args = args;
        stack.spawn_kamailio("start");
        stack
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("kamailio.log")).unwrap_or_default()
    }

    pub fn relay_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("relay.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.run_dir.join("relay.err")).unwrap_or_default()
    }

    /// Runs `kamcmd` against this Kamailio; returns (success, stdout+stderr).
    pub fn kamcmd(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .expect("kamcmd");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Sends the relay SIGTERM and waits (up to `wait`) for it to exit; its exit status. Whatever
    /// is left of its process group is killed either way.
    pub fn terminate_relay(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        self.relay.take()?.stop(wait)
    }

    /// Starts the relay again after [`Stack::terminate_relay`]: the arguments of
    /// [`Stack::start_with`] (same control and focus sockets, same MSRP port) plus `extra` (pass
    /// the `extra_relay_args` the stack was started with); the logs are appended to. Waits for the
    /// control socket.
    pub fn restart_relay(&mut self, extra: &[String]) {
        assert!(self.relay.is_none(), "terminate the relay first");
        self.spawn_relay(extra, "restart");
    }

    /// Stops Kamailio (SIGTERM, its alias table is gone) and starts it again with the same
    /// arguments, the relay left running; waits until it answers OPTIONS and its focus socket is
    /// back. The log is appended to.
    pub fn restart_kamailio(&mut self) {
        if let Some(mut k) = self.kamailio.take() {
            k.stop(process::TERM_WAIT);
        }
        let _ = std::fs::remove_file(self.run_dir.join("relay.sock.focus"));
        self.spawn_kamailio("restart");
    }

    /// A file of the run directory, opened for appending (created if missing).
    fn append(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run_dir.join(name))
            .unwrap()
    }

    /// Starts the relay (control and focus sockets in the run directory, MSRP on `msrp_port`,
    /// then `extra`), logging to relay.log/relay.err; waits for its control socket.
    fn spawn_relay(&mut self, extra: &[String], what: &str) {
        let relay_bin = artifact("CHAT_ALIAS_RELAY_BIN", "target/release/chat-alias-relay");
        let relay_sock = self.run_dir.join("relay.sock");
        self.relay = Some(
            GroupChild::spawn(
                Command::new(&relay_bin)
                    .args([
                        "--control",
                        relay_sock.to_str().unwrap(),
                        "--listen",
                        &format!("127.0.0.1:{}", self.msrp_port),
                    ])
                    // The module's focus socket, at its default place next to the relay's
                    // control socket.
                    .args([
                        "--focus",
                        self.run_dir.join("relay.sock.focus").to_str().unwrap(),
                    ])
                    .args(extra)
                    .stdout(Stdio::from(self.append("relay.log")))
                    .stderr(Stdio::from(self.append("relay.err"))),
            )
            .unwrap_or_else(|e| panic!("{what} relay: {e}")),
        );
        wait_for(
            || relay_sock.exists(),
            Duration::from_secs(10),
            &format!("relay control socket ({what})"),
        );
    }

    /// Starts Kamailio with `kamailio_args`, logging to kamailio.log; ready when it answers
    /// OPTIONS with 200 and the module's focus socket exists (the main process creates it after
    /// its UDP workers may already answer).
    fn spawn_kamailio(&mut self, what: &str) {
        let log = self.append("kamailio.log");
        self.kamailio = Some(
            GroupChild::spawn(
                Command::new("kamailio")
                    .args(&self.kamailio_args)
                    .stdout(Stdio::from(log.try_clone().unwrap()))
                    .stderr(Stdio::from(log)),
            )
            .unwrap_or_else(|e| panic!("{what} kamailio: {e}")),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.kamailio.as_mut().and_then(GroupChild::try_wait) {
                panic!("kamailio exited ({status}) during {what}:\n{}", self.log());
            }
            let mut c = sip::Client::new(sip::Transport::Udp, self.sip_port);
            if c.options(Duration::from_millis(300))
                .is_some_and(|r| r.code == 200)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio not ready ({what}):\n{}",
                self.log()
            );
        }
        wait_for(
            || self.run_dir.join("relay.sock.focus").exists(),
            Duration::from_secs(10),
            &format!("the module's focus socket ({what})"),
        );
    }

    /// Kills the relay (SIGKILL to its process group) without waiting for it to shut down.
    pub fn stop_relay(&mut self) {
        if let Some(mut r) = self.relay.take() {
            r.kill_group();
        }
    }

    /// The pid of Kamailio's main process, which is also the id of the process group its workers
    /// run in.
    pub fn kamailio_pid(&self) -> Option<u32> {
        self.kamailio.as_ref().map(GroupChild::id)
    }

    pub fn client(&self, t: sip::Transport) -> sip::Client {
        sip::Client::new(t, self.sip_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut k) = self.kamailio.take() {
            // SIGTERM lets Kamailio's main process stop its children; then the group is killed
            // whatever happened, so no orphaned worker outlives the test.
            k.stop(process::TERM_WAIT);
        }
        self.stop_relay();
        if std::thread::panicking() {
            eprintln!(
                "---- kamailio log ({}) ----\n{}",
                self.name,
                tail(&self.log(), 60)
            );
            eprintln!("---- relay log ----\n{}", tail(&self.relay_log(), 30));
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn wait_for(mut f: impl FnMut() -> bool, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the sample groups into a fresh directory the test may change.
pub fn copy_groups(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(repo().join("kamailio/groups")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A value from the relay's Prometheus endpoint (`--metrics ADDR`).
pub fn metric(addr: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{out}"))
}
