//! `make demo` (scripts/demo.sh, three chat-alias-client processes) against a real stack: checks
//! what each participant saw — content, never timing — and that docs/demo-transcript.txt is what
//! the demo produces.
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use support::{repo, Stack};

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

/// Participant → the lines of its view, in order.
fn views(transcript: &str) -> BTreeMap<String, Vec<String>> {
    let mut v: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in transcript.lines() {
        if let Some((who, what)) = line.split_once(" | ") {
            v.entry(who.trim().to_string())
                .or_default()
                .push(what.to_string());
        }
    }
    v
}

fn has(view: &[String], line: &str) -> bool {
    view.iter().any(|l| l == line)
}

fn none_contains(view: &[String], text: &str) -> bool {
    view.iter().all(|l| !l.contains(text))
}

const ALICE: &str = r#""Alice" <sip:alice@example.com>"#;
const BOB: &str = r#""bob" <sip:anonymous@anonymous.invalid>"#;
const BOB2: &str = r#""bob-2" <sip:anonymous2@anonymous.invalid>"#;

#[test]
fn demo_conversation_shows_each_sides_view() {
    let stack = Stack::start("demo");
    let out = Command::new("bash")
        .arg(repo().join("scripts/demo.sh"))
        .env("CHAT_ALIAS_SIP_PORT", stack.sip_port.to_string())
        .env("CHAT_ALIAS_CLIENT_BIN", client_bin())
        .output()
        .expect("run scripts/demo.sh");
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{transcript}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("using the stack that answers"),
        "the demo used the running stack: {stderr}"
    );
    let v = views(&transcript);
    let (alice, bob, carol) = (&v["alice"], &v["bob"], &v["carol"]);

    // Joins: alice as herself, bob as "bob", carol asked for "bob" and was told bob-2.
    assert!(has(
        alice,
        &format!("joined sip:lounge@im.example.net as {ALICE}")
    ));
    assert!(has(
        bob,
        &format!("joined sip:lounge@im.example.net as {BOB}")
    ));
    assert!(has(
        carol,
        &format!(
            "joined sip:lounge@im.example.net as {BOB2} (assigned by the focus: {BOB} was taken)"
        )
    ));

    // Group messages arrive at everyone else with the sender's identity in the room (CPIM From).
    let greeting = "Hi all! The lounge tells me I am bob-2.";
    assert!(has(carol, &format!("[group] me: {greeting}")));
    for view in [alice, bob] {
        assert!(
            has(view, &format!("[group] {BOB2}: {greeting}")),
            "{view:#?}"
        );
    }
    let welcome = "Welcome to the lounge, both of you!";
    for view in [bob, carol] {
        assert!(
            has(view, &format!("[group] {ALICE}: {welcome}")),
            "{view:#?}"
        );
    }
    let thanks = "Thanks, Alice! Two of us called bob: that is a first.";
    for view in [alice, carol] {
        assert!(has(view, &format!("[group] {BOB}: {thanks}")), "{view:#?}");
    }

    // The private messages reach only their recipient.
    let psst = "Psst, Alice: bob-2 is really Carol.";
    assert!(has(carol, &format!("[private] me → {ALICE}: {psst}")));
    assert!(has(alice, &format!("[private] {BOB2} → me: {psst}")));
    let safe = "Your secret is safe with me.";
    assert!(has(alice, &format!("[private] me → {BOB2}: {safe}")));
    assert!(has(carol, &format!("[private] {ALICE} → me: {safe}")));
    assert!(
        none_contains(bob, "really Carol") && none_contains(bob, safe),
        "{bob:#?}"
    );
    assert!(none_contains(bob, "[private]"));

    // Carol leaves; then her alias is gone: Alice's private message to bob-2 is refused.
    assert!(has(carol, "left (BYE answered 200 OK)"));
    assert_eq!(
        carol.last().map(String::as_str),
        Some("left (BYE answered 200 OK)")
    );
    assert!(has(
        alice,
        &format!("[error] private message to {BOB2} not delivered: 404 Not Found")
    ));
    assert!(has(
        bob,
        &format!("[group] {ALICE}: Looks like bob-2 has left.")
    ));
    for view in [alice, bob] {
        assert_eq!(
            view.last().map(String::as_str),
            Some("left (BYE answered 200 OK)")
        );
    }
    // No one's view carries a real identity behind an alias.
    for view in [alice, bob, carol] {
        assert!(none_contains(view, "carol@") && none_contains(view, "bob@example.com"));
    }

    // docs/demo-transcript.txt is this demo's output: the same lines in each view (the order of
    // lines within a view may differ between runs where two messages race).
    let doc = std::fs::read_to_string(repo().join("docs/demo-transcript.txt"))
        .expect("docs/demo-transcript.txt");
    let mut produced = v.clone();
    let mut documented = views(&doc);
    for lines in produced.values_mut().chain(documented.values_mut()) {
        lines.sort();
    }
    assert_eq!(
        documented, produced,
        "docs/demo-transcript.txt is out of date: regenerate with `scripts/demo.sh > docs/demo-transcript.txt`"
    );
}
