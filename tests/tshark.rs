//! Wireshark's dissectors (tshark) read a captured join and chat on loopback without a single
//! malformed packet: SIP (UDP and TCP), the SDP offers and answers, the multipart/mixed 200 OK
//! bodies, and MSRP (chunked messages included).
//!
//! tshark is installed by scripts/setup.sh (`make test` runs it first); the capture needs root or
//! CAP_NET_RAW, which `make test` has.
mod support;

use chat_alias_client::{Chat, Config, Transport};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";
const T: Duration = Duration::from_secs(5);

fn tshark_installed() {
    let ok = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "tshark is not installed: run scripts/setup.sh (or `make test`, which does)"
    );
}

/// `tshark -r` with our ports decoded as SIP and MSRP, plus `extra` arguments; stdout.
fn read(pcap: &Path, stack: &Stack, extra: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("udp.port=={},sip", stack.sip_port)])
        .args(["-d", &format!("tcp.port=={},sip", stack.sip_port)])
        .args(["-d", &format!("tcp.port=={},msrp", stack.msrp_port)])
        .args(extra)
        .output()
        .expect("tshark -r");
    assert!(
        out.status.success(),
        "tshark -r failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Frames matching a display filter.
fn count(pcap: &Path, stack: &Stack, filter: &str) -> usize {
    read(
        pcap,
        stack,
        &["-Y", filter, "-T", "fields", "-e", "frame.number"],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .count()
}

#[test]
fn tshark_dissects_join_and_chat_without_malformed_packets() {
    tshark_installed();
    let stack = Stack::start("tshark");
    let pcap = stack.run_dir.join("join-and-chat.pcapng");
    let mut cap = Command::new("tshark")
        .args(["-i", "lo", "-n", "-q"])
        .args([
            "-f",
            &format!("port {} or port {}", stack.sip_port, stack.msrp_port),
        ])
        .arg("-w")
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tshark");
    // tshark says "Capturing on 'Loopback: lo'", then "Capture started." once dumpcap runs.
    let (tx, rx) = mpsc::channel();
    let err = cap.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut said = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains("Capture started") => break,
            Ok(l) => said.push(l),
            Err(_) => {
                let _ = cap.kill();
                panic!("tshark did not start capturing: {said:#?}");
            }
        }
    }

    // dumpcap may still be attaching its filter: give it a moment before the first packet.
    std::thread::sleep(Duration::from_millis(500));

    let server = SocketAddr::from(([127, 0, 0, 1], stack.sip_port));
    let cfg = |id: &str| Config::new(LOUNGE, server, id);
    let mut alice = Chat::join(cfg("sip:alice@example.com").name("Alice")).unwrap();
    let mut bob = Chat::join(cfg("sip:bob@example.com").alias("bob")).unwrap();
    // Both of these get a multipart/mixed 200 OK: one over UDP, one over TCP.
    let mut carol = Chat::join(cfg("sip:carol@example.com").alias("bob")).unwrap();
    let dave = Chat::join(
        cfg("sip:dave@example.com")
            .alias("bob")
            .transport(Transport::Tcp),
    )
    .unwrap();
    assert_eq!(carol.identity().display_name.as_deref(), Some("bob-2"));
    assert_eq!(dave.identity().display_name.as_deref(), Some("bob-3"));

    carol.say_confirmed("Hello from bob-2", T).unwrap();
    alice
        .expect_message(T, |m| m.text == "Hello from bob-2")
        .unwrap();
    alice.msg_confirmed("bob-2", "a private word", T).unwrap();
    carol.expect_message(T, |m| m.private).unwrap();
    // Three chunks of 2048 octets or fewer.
    let long = "x".repeat(5000);
    let sent = bob.say_confirmed(&long, T).unwrap();
    assert_eq!(sent.chunks, 3);
    alice.expect_message(T, |m| m.text == long).unwrap();
    for c in [alice, bob, carol, dave] {
        c.leave();
    }

    // Let the last packets reach the capture, then stop tshark (SIGINT: it flushes the file).
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &cap.id().to_string()])
        .status();
    let _ = cap.wait();

    let text = read(&pcap, &stack, &["-V"]);
    for layer in [
        "Session Initiation Protocol (INVITE)",
        "Session Initiation Protocol (200)",
        "Session Initiation Protocol (ACK)",
        "Session Initiation Protocol (BYE)",
        "Session Description Protocol",
        "MIME Multipart Media Encapsulation, Type: multipart/mixed",
        "Message Session Relay Protocol",
    ] {
        assert!(text.contains(layer), "no {layer:?} in the dissection");
    }
    assert!(
        text.contains("message/cpim"),
        "the CPIM part of the multipart 200 OK"
    );
    assert!(
        !text.contains("Malformed Packet"),
        "tshark reports malformed packets:\n{}",
        read(&pcap, &stack, &["-Y", "_ws.malformed", "-V"])
    );
    assert_eq!(count(&pcap, &stack, "_ws.malformed"), 0);

    // What was dissected, by filter.
    assert!(count(&pcap, &stack, "sip.Method == \"INVITE\"") >= 4);
    assert!(
        count(
            &pcap,
            &stack,
            "sip.Status-Code == 200 && sip.CSeq.method == \"INVITE\""
        ) >= 4
    );
    assert!(count(&pcap, &stack, "sip.Method == \"BYE\"") >= 4);
    assert!(
        count(&pcap, &stack, "udp && sip && mime_multipart") >= 1,
        "multipart over UDP"
    );
    assert!(
        count(&pcap, &stack, "tcp && sip && mime_multipart") >= 1,
        "multipart over TCP"
    );
    assert!(
        count(
            &pcap,
            &stack,
            "sdp.media == \"message 0 TCP/MSRP *\" || sdp.media.proto == \"TCP/MSRP\""
        ) >= 8
    );
    assert!(count(&pcap, &stack, "msrp.method == \"SEND\"") >= 10);
    assert!(count(&pcap, &stack, "msrp.status.code == 200") >= 10);
    assert!(count(&pcap, &stack, "msrp.byte.range") >= 10);
}
