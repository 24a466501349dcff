//! End-to-end: the relay's resources and its control socket hold against hostile local and
//! network peers. The relay runs alone here (no Kamailio): the tests speak the control protocol
//! themselves, as the module would, and MSRP as participants and attackers would.
mod support;

use chat_alias_proto::control::{self, Join, Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::metric;
use support::msrp::{cpim as cpim_body, new_id, Client};

const LOUNGE: &str = "sip:lounge@im.example.net";

/// A relay process of its own: free port, own run directory, stopped (by pid) on drop.
struct Relay {
    child: support::process::GroupChild,
    dir: PathBuf,
    control: PathBuf,
    port: u16,
}

fn relay_bin() -> PathBuf {
    let p = std::env::var("CHAT_ALIAS_RELAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| support::repo().join("target/release/chat-alias-relay"));
    assert!(p.exists(), "{} not found: run `make build`", p.display());
    p
}

impl Relay {
    /// Starts the relay with `args`, under `umask` (through `sh`, as an init script might).
    fn start(name: &str, umask: &str, args: &[&str]) -> Relay {
        let dir = support::repo()
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let control = dir.join("relay.sock");
        let port = support::free_port();
        let child = support::process::GroupChild::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
                .arg(relay_bin())
                .args(["--control", control.to_str().unwrap()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(args)
                .stdout(Stdio::from(
                    std::fs::File::create(dir.join("relay.log")).unwrap(),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("relay.err")).unwrap(),
                )),
        )
        .expect("start relay");
        support::wait_for(
            || control.exists(),
            Duration::from_secs(10),
            "relay control socket",
        );
        Relay {
            child,
            dir,
            control,
            port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("relay.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("relay.err")).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the relay has used so far.
    fn cpu(&self) -> Duration {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = after
            .split(' ')
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        // Clock ticks: 100 per second on Linux.
        Duration::from_millis((f[0] + f[1]) * 10)
    }

    /// The relay's peak resident set (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    fn ctl(&self) -> Ctl {
        Ctl::connect(&self.control)
    }

    fn uri(&self, session: &str) -> String {
        format!("msrp://127.0.0.1:{}/{session};tcp", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.child.kill_group();
    }
}

/// The module's side of the control socket.
struct Ctl {
    w: UnixStream,
    r: BufReader<UnixStream>,
    next: u64,
}

impl Ctl {
    fn connect(path: &Path) -> Ctl {
        let w = UnixStream::connect(path).expect("connect control socket");
        w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Ctl { w, r, next: 1 }
    }

    fn call(&mut self, req: Request) -> Response {
        self.w.write_all(&control::encode(&req)).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).expect("control response");
        let resp: Response = control::decode(line.as_bytes()).expect("a control response");
        assert_eq!(resp.id, req.id());
        resp
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Registers a participant of the lounge whose own MSRP path is `own`; returns its relay URI.
    fn join(&mut self, session: &str, uri: &str, own: &str) -> String {
        let id = self.id();
        let r = self.call(Request::Join(Join {
            id,
            version: control::VERSION,
            session: session.into(),
            conference: LOUNGE.into(),
            uri: uri.into(),
            display_name: None,
            anonymous: true,
            peer_path: vec![own.into()],
            accept_wrapped_types: vec![],
            chatroom: vec![],
            private_messages_allowed: false,
        }));
        assert!(r.ok, "{r:?}");
        r.grant.expect("grant").path
    }

    fn leave(&mut self, session: &str) {
        let id = self.id();
        assert!(
            self.call(Request::Leave {
                id,
                session: session.into()
            })
            .ok
        );
    }
}

/// A fresh session id and the participant's own path for it.
fn fresh() -> (String, String) {
    let session = new_id() + &new_id();
    let own = format!("msrp://127.0.0.1:9/{};tcp", new_id());
    (session, own)
}

/// Joins over the control socket and binds over MSRP: a participant ready to chat.
fn participant(relay: &Relay, ctl: &mut Ctl, n: usize) -> (Client, String) {
    let (session, own) = fresh();
    let uri = format!("sip:anonymous{n}@anonymous.invalid");
    let path = ctl.join(&session, &uri, &own);
    assert_eq!(path, relay.uri(&session));
    let mut c = Client::connect(&path, &own);
    assert_eq!(c.bind(), Some(200), "bind of participant {n}");
    (c, uri)
}

/// Runs a short Python program as the user `nobody` (uid 65534) that connects to the control
/// socket, sends a ping and prints what it got back (`b''` when closed unanswered).
fn ping_as_nobody(control: &Path) -> String {
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed:", e.errno); sys.exit(0)
try:
    s.sendall(b'{"op":"ping","id":7}\n')
    print(repr(s.recv(4096)))
except OSError as e:
    print("recv failed:", e.errno)
"#;
    use std::os::unix::process::CommandExt;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, control.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run python3 as nobody");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Issue 7, item 8: the control socket is 0600 whatever the umask, and a peer whose uid is not
/// allowed is closed unanswered (and counted), while `--control-allow-uid` admits it.
#[test]
fn control_socket_is_0600_under_umask_000_and_refuses_other_uids() {
    let relay = Relay::start("ctl-perm", "000", &[]);
    let mode = std::fs::metadata(&relay.control)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    // The relay's own uid is served.
    let mut ctl = relay.ctl();
    assert!(ctl.call(Request::Ping { id: 1 }).ok);
    if !is_root() || !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipping the other-uid half: needs root and /usr/bin/python3");
        return;
    }
    // Another user: the file mode alone keeps it out.
    let out = ping_as_nobody(&relay.control);
    assert!(out.starts_with("connect failed: 13"), "{out}");
    // Even with the mode opened up (by mistake, or a peer with CAP_DAC_OVERRIDE), SO_PEERCRED
    // keeps it out: connected, then closed without a byte.
    std::fs::set_permissions(&relay.control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = ping_as_nobody(&relay.control);
    assert!(out == "b''" || out.starts_with("recv failed"), "{out}");
    assert!(!out.contains("ok"), "{out}");
    support::wait_for(
        || relay.log().contains("control connection refused"),
        Duration::from_secs(3),
        "refusal logged",
    );
    assert!(relay.log().contains("Some(65534)"), "{}", relay.log());
    // The allowed peer is still served.
    assert!(ctl.call(Request::Ping { id: 2 }).ok);
    drop(relay);

    // With --control-allow-uid 65534, nobody is answered.
    let relay = Relay::start("ctl-allow", "022", &["--control-allow-uid", "65534"]);
    std::fs::set_permissions(&relay.control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = ping_as_nobody(&relay.control);
    assert!(out.contains(r#""ok":true"#), "{out}");
    assert!(relay.ctl().call(Request::Ping { id: 3 }).ok);
}

/// A participant of a real stack: joins `LOUNGE` over SIP (anonymously as `alias`), connects to
/// the relay and binds. Returns its MSRP client and CPIM From.
fn enter_stack(stack: &support::Stack, identity: &str, alias: &str) -> (Client, String) {
    let mut p =
        support::participant::Participant::enter(stack, LOUNGE, identity, Some(alias), true);
    let from = p.cpim_from();
    let c = p.msrp.take().expect("bound");
    // The SIP dialog must outlive the test's use of the session.
    std::mem::forget(p.sip);
    (c, from)
}

/// Whether the relay has closed `s` (EOF or reset) by `deadline`.
fn closed_by(s: &mut std::net::TcpStream, deadline: Instant) -> bool {
    use std::io::Read;
    let mut b = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Issue 7, item 7 (idle connections): 300 TCP connections that never send a byte do not stop
/// participants from binding and chatting, whether the per-address cap (default, everything on
/// 127.0.0.1) or the global unbound cap (per-address cap lifted) is what fills up; and every
/// silent connection is closed (evicted, or by the first-byte timeout).
#[test]
fn three_hundred_silent_connections_do_not_lock_participants_out() {
    for (name, extra) in [
        ("idle-flood-default", vec![]),
        (
            "idle-flood-global",
            vec!["--max-unbound-per-address".to_string(), "4096".to_string()],
        ),
    ] {
        let stack = support::Stack::start_with(
            name,
            support::StackOptions {
                extra_relay_args: extra,
                ..Default::default()
            },
        );
        let mut silent: Vec<std::net::TcpStream> = (0..300)
            .map(|i| {
                std::net::TcpStream::connect(("127.0.0.1", stack.msrp_port))
                    .unwrap_or_else(|e| panic!("silent connection {i}: {e}"))
            })
            .collect();
        let flooded = Instant::now();
        let (mut alice, alice_from) = enter_stack(&stack, "sip:alice@example.com", "alice");
        let (mut bob, _) = enter_stack(&stack, "sip:bob@example.com", "bob");
        let body = cpim_body(
            &alice_from,
            &[&format!("<{LOUNGE}>")],
            "text/plain",
            b"past the flood",
        );
        assert_eq!(alice.send_cpim(&body), Some(200), "{name}");
        let got = bob
            .next_message(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{name}: bob got nothing"));
        assert!(got.text().ends_with("past the flood"), "{}", got.text());
        // Every silent connection is closed: evicted at once, or at the first-byte timeout (3 s).
        let deadline = flooded + Duration::from_secs(8);
        let open = silent
            .iter_mut()
            .map(|s| closed_by(s, deadline))
            .filter(|closed| !closed)
            .count();
        assert_eq!(open, 0, "{name}: silent connections still open");
        // The participants' sessions are untouched.
        let body = cpim_body(
            &alice_from,
            &[&format!("<{LOUNGE}>")],
            "text/plain",
            b"still here",
        );
        assert_eq!(alice.send_cpim(&body), Some(200), "{name}");
        assert!(bob
            .next_message(Duration::from_secs(3))
            .is_some_and(|m| m.text().ends_with("still here")));
    }
}

/// Samples `name` every 10 ms until `stop` is set; returns the largest value seen.
fn sample_max(
    addr: String,
    name: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            max = max.max(metric(&addr, name));
            std::thread::sleep(Duration::from_millis(10));
        }
        max
    })
}

const MIB: u64 = 1024 * 1024;

/// Issue 7, item 7 (memory): 500 bound recipients that never read and one 16 MiB message keep
/// the relay's peak RSS under `--max-queued-bytes` + 64 MiB, and its queued bytes under the cap;
/// the room works afterwards. (Before chunk bodies were shared, each of the 500 copies held its
/// own 4 MiB queue: 2 GiB.)
#[test]
fn five_hundred_non_readers_and_a_16_mib_message_stay_under_the_memory_cap() {
    let cap = 64 * MIB;
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let relay = Relay::start(
        "mem-cap",
        "022",
        &[
            "--max-queued-bytes",
            &cap.to_string(),
            "--metrics",
            &metrics,
        ],
    );
    let mut ctl = relay.ctl();
    let (mut sender, sender_uri) = participant(&relay, &mut ctl, 0);
    let idle: Vec<(Client, String)> = (1..=500)
        .map(|n| participant(&relay, &mut ctl, n))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_max(
        metrics.clone(),
        "chat_alias_relay_queued_bytes",
        stop.clone(),
    );
    let content = vec![b'x'; 16 * MIB as usize];
    let body = cpim_body(
        &format!("<{sender_uri}>"),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        &content,
    );
    let t0 = Instant::now();
    let cpu0 = relay.cpu();
    let statuses = sender.send_chunked(&body, 1024 * 1024, true);
    let took = t0.elapsed();
    let cpu = relay.cpu() - cpu0;
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "{statuses:?}\n{}",
        relay.log()
    );
    // Let the relay settle (congested copies stopped, aborts queued).
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_queued = sampler.join().unwrap();
    eprintln!(
        "bytes out {} MiB, frames out {}, congestion drops {}",
        metric(&metrics, "chat_alias_relay_bytes_out_total") / MIB,
        metric(&metrics, "chat_alias_relay_frames_out_total"),
        metric(
            &metrics,
            "chat_alias_relay_drops_total{reason=\"congestion\"}"
        )
    );
    let peak = relay.peak_rss();
    eprintln!(
        "16 MiB to 500 non-readers: sent in {took:?} (relay CPU {cpu:?}), peak RSS {} MiB, max queued {} MiB",
        peak / MIB,
        max_queued / MIB
    );
    assert!(
        peak < cap + 64 * MIB,
        "peak RSS {} MiB over the cap + 64 MiB",
        peak / MIB
    );
    // Control frames (aborts, responses) may pass the cap by little.
    assert!(max_queued <= cap + MIB, "queued {max_queued}");
    // Two readers joining now chat normally.
    let (mut a, a_uri) = participant(&relay, &mut ctl, 1000);
    let (mut b, _) = participant(&relay, &mut ctl, 1001);
    let body = cpim_body(
        &format!("<{a_uri}>"),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        b"after the flood",
    );
    assert_eq!(a.send_cpim(&body), Some(200));
    let got = b.next_message(Duration::from_secs(5)).expect("b gets it");
    assert_eq!(got.body, body);
    drop(idle);
}

/// Issue 7, item 7 (control plane): while the relay is saturated by fan-out (four senders of
/// 4 MiB messages, 100 recipients reading as fast as they can), a join + leave round trip on the
/// control socket is answered within the module's default `relay_timeout_ms` (200 ms): the worst
/// of 20 round trips.
#[test]
fn joins_and_leaves_are_answered_within_200_ms_under_fan_out() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let relay = Relay::start("ctl-latency", "022", &["--metrics", &metrics]);
    let mut ctl = relay.ctl();
    let senders: Vec<(Client, String)> = (0..4).map(|n| participant(&relay, &mut ctl, n)).collect();
    let readers: Vec<std::net::TcpStream> = (10..110)
        .map(|n| {
            let (c, _) = participant(&relay, &mut ctl, n);
            let s = c.raw_stream().try_clone().unwrap();
            s.set_nonblocking(true).unwrap();
            std::mem::forget(c);
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut readers = readers;
    for half in [readers.split_off(50), readers] {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 256 * 1024];
            let mut half = half;
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for s in &mut half {
                    if let Ok(n) = s.read(&mut buf) {
                        idle &= n == 0;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
    for (mut c, uri) in senders {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let content = vec![b'y'; 4 * MIB as usize];
            let body = cpim_body(
                &format!("<{uri}>"),
                &[&format!("<{LOUNGE}>")],
                "text/plain",
                &content,
            );
            while !stop.load(Ordering::Relaxed) {
                let st = c.send_chunked(&body, 1024 * 1024, true);
                if st.iter().any(|s| *s != Some(200)) {
                    break;
                }
            }
        }));
    }
    // Saturated: the relay is busy fanning out.
    std::thread::sleep(Duration::from_millis(500));
    let out0 = metric(&metrics, "chat_alias_relay_bytes_out_total");
    let (cpu0, t0) = (relay.cpu(), Instant::now());
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let (session, own) = fresh();
        let t = Instant::now();
        ctl.join(&session, "sip:late@anonymous.invalid", &own);
        ctl.leave(&session);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy = (relay.cpu() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let fanned = metric(&metrics, "chat_alias_relay_bytes_out_total") - out0;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    eprintln!(
        "control round trips under fan-out: worst {worst:?}; relay CPU {:.0}%, {} MiB fanned out meanwhile",
        busy * 100.0,
        fanned / MIB
    );
    assert!(
        fanned > 100 * MIB,
        "the relay was not saturated: {} MiB",
        fanned / MIB
    );
    assert!(
        worst < Duration::from_millis(200),
        "worst round trip {worst:?}"
    );
}

/// Issue 7, item 7 (memory): with `--max-queued-bytes` below what the non-readers would hold,
/// the relay-wide cap is what stops their copies (counted), the queued bytes never pass it by
/// more than a few control frames, and the sender is not held back.
#[test]
fn the_relay_wide_queue_cap_stops_copies_beyond_it() {
    let cap = 2 * MIB;
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let relay = Relay::start(
        "mem-small-cap",
        "022",
        &[
            "--max-queued-bytes",
            &cap.to_string(),
            "--metrics",
            &metrics,
        ],
    );
    let mut ctl = relay.ctl();
    let (mut sender, sender_uri) = participant(&relay, &mut ctl, 0);
    let idle: Vec<(Client, String)> = (1..=20).map(|n| participant(&relay, &mut ctl, n)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_max(
        metrics.clone(),
        "chat_alias_relay_queued_bytes",
        stop.clone(),
    );
    let body = cpim_body(
        &format!("<{sender_uri}>"),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        &vec![b'z'; 16 * MIB as usize],
    );
    let statuses = sender.send_chunked(&body, 1024 * 1024, true);
    assert!(statuses.iter().all(|s| *s == Some(200)), "{statuses:?}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_queued = sampler.join().unwrap();
    let full = metric(&metrics, "chat_alias_relay_global_queue_full_total");
    eprintln!("cap 2 MiB: max queued {max_queued} bytes, {full} data frames refused at the cap");
    assert!(full > 0, "the relay-wide cap never refused a frame");
    assert!(max_queued <= cap + 64 * 1024, "queued {max_queued}");
    assert_eq!(
        metric(
            &metrics,
            "chat_alias_relay_drops_total{reason=\"congestion\"}"
        ),
        20,
        "every non-reader's copy stopped"
    );
    drop(idle);
}
