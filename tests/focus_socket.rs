//! End-to-end: the module's focus socket (what the relay asks) is 0600 and answers only the relay's
//! questions; the operator's RPCs (`chat_alias.list` names every real identity) are not reachable.
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::Stack;

fn ask(stack: &Stack, me: &UnixDatagram, req: &str) -> Option<serde_json::Value> {
    let focus = stack.run_dir.join("relay.sock.focus");
    me.send_to(req.as_bytes(), &focus).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = me.recv(&mut buf).ok()?;
    serde_json::from_slice(&buf[..n]).ok()
}

#[test]
fn the_focus_socket_is_private_and_answers_nothing_but_its_questions() {
    let stack = Stack::start("focus-socket");
    let focus = stack.run_dir.join("relay.sock.focus");
    let mode = std::fs::metadata(&focus).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "focus socket mode {mode:o}");
    let me = UnixDatagram::bind(stack.run_dir.join("probe.sock")).unwrap();
    me.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for method in [
        "chat_alias.list",
        "chat_alias.stats",
        "chat_alias.reload",
        "core.version",
        "system.listMethods",
    ] {
        let r = ask(
            &stack,
            &me,
            &format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":5}}"#),
        )
        .expect("an error answer");
        assert_eq!(r["error"]["code"], -32601, "{method}: {r}");
        assert!(r.get("result").is_none(), "{method}: {r}");
    }
    // The relay's questions are answered.
    let r = ask(
        &stack,
        &me,
        r#"{"jsonrpc":"2.0","method":"chat_alias.sessions","params":[0,16],"id":6}"#,
    )
    .expect("a listing");
    assert_eq!(r["result"], serde_json::json!([]), "{r}");
    let r = ask(
        &stack,
        &me,
        r#"{"jsonrpc":"2.0","method":"chat_alias.missing","params":[["sip:lounge@im.example.net","0123456789abcdef0123456789abcdef"]],"id":7}"#,
    )
    .expect("an answer");
    assert_eq!(
        r["result"]["missing"],
        serde_json::json!(["0123456789abcdef0123456789abcdef"]),
        "{r}"
    );
}

/// Datagrams from a uid other than the allowed one are dropped unanswered.
#[test]
fn the_focus_socket_ignores_other_uids() {
    let stack = Stack::start_with(
        "focus-socket-uid",
        support::StackOptions {
            defines: vec![("FOCUS_ALLOWED_UID".into(), "54321".into())],
            ..Default::default()
        },
    );
    let me = UnixDatagram::bind(stack.run_dir.join("probe.sock")).unwrap();
    me.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let r = ask(
        &stack,
        &me,
        r#"{"jsonrpc":"2.0","method":"chat_alias.sessions","params":[0,16],"id":6}"#,
    );
    assert!(r.is_none(), "answered a stranger: {r:?}");
    assert!(stack.log().contains("dropped unanswered"));
}
