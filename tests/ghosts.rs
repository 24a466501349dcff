//! End-to-end: no place in a conference is held by a participant who cannot be reached. Through a
//! real Kamailio with chat_alias and the real relay, with short limits (`bind_timeout` and
//! `msrp_gone_timeout` of 2 s): a participant that never binds its MSRP session, or whose MSRP
//! connection is gone, gets a BYE from the focus with a `Reason` header (RFC 3326) and its identity
//! is free again; a reload that removes an occupied group ends that conference the same way; a
//! reload to an empty groups directory is refused unless forced.
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::answer::assigned;
use support::participant::Participant;
use support::sip::{join, leave, Incoming, Invite, Transport};
use support::{Stack, StackOptions};

const LOUNGE: &str = "sip:lounge@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";
/// The limits the stacks of these tests run with (seconds).
const LIMIT: u64 = 2;

fn stack(name: &str, groups_dir: Option<PathBuf>) -> Stack {
    Stack::start_with(
        name,
        StackOptions {
            groups_dir,
            defines: vec![
                ("BIND_TIMEOUT".into(), LIMIT.to_string()),
                ("MSRP_GONE_TIMEOUT".into(), LIMIT.to_string()),
            ],
            ..Default::default()
        },
    )
}

/// A participant joined anonymously over SIP (UDP, so that the focus's BYE reaches the test's
/// socket), not yet bound.
fn member(stack: &Stack, group: &str, identity: &str, alias: &str) -> Participant {
    Participant::join(stack, group, identity, Some(alias), true)
}

// What only these tests do with a participant (same crate, so an inherent impl is allowed).
impl Participant {
    /// Closes the MSRP connection the way a killed client does: no BYE, a reset instead of an
    /// orderly close.
    fn kill_msrp(&mut self) {
        let c = self.msrp.take().expect("bound");
        socket2::SockRef::from(c.raw_stream())
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    }

    /// The focus's BYE in this participant's dialog, if one comes within `wait` (other requests
    /// are not expected and fail the test).
    fn expect_bye(&mut self, wait: Duration) -> Option<Incoming> {
        let r = self.sip.recv_request(wait)?;
        assert_eq!(r.method, "BYE", "{}", r.raw_text());
        Some(r)
    }

    /// The focus's BYE for a removal decided `limit_s` seconds after `since` (`what` names the
    /// limit): not before it, within 3 s after it, in this dialog, with the expected Reason.
    fn expect_removal(
        &mut self,
        since: Instant,
        limit_s: u64,
        what: &str,
        cause: &str,
        text: &str,
    ) -> Incoming {
        let bye = self
            .expect_bye(Duration::from_secs(limit_s + 3))
            .unwrap_or_else(|| panic!("a BYE within {what} + a little"));
        let after = since.elapsed();
        assert!(
            after >= Duration::from_secs(limit_s) - Duration::from_millis(300),
            "not before {what}: {after:?}"
        );
        self.check_bye(&bye, cause, text);
        bye
    }

    /// Checks that `bye` is in this participant's dialog (RFC 3261 §12.2.1.1: Call-ID, the tags
    /// swapped, the remote target from our Contact) and carries the expected Reason.
    fn check_bye(&self, bye: &Incoming, cause: &str, text: &str) {
        let raw = bye.raw_text();
        assert_eq!(
            bye.header("Call-ID"),
            Some(self.inv.call_id.as_str()),
            "{raw}"
        );
        assert_eq!(
            bye.tag_of("From"),
            self.ok.to_tag(),
            "From-tag is the To-tag of our 200 OK: {raw}"
        );
        assert_eq!(bye.tag_of("To"), Some(self.inv.from_tag.clone()), "{raw}");
        assert!(
            bye.uri
                .starts_with(&format!("sip:127.0.0.1:{}", self.sip.local_port)),
            "Request-URI is our Contact: {raw}"
        );
        let reason = bye
            .header("Reason")
            .unwrap_or_else(|| panic!("no Reason: {raw}"));
        assert!(reason.starts_with("SIP;"), "{reason}");
        assert!(reason.contains(&format!("cause={cause}")), "{reason}");
        assert!(reason.contains(&format!("text=\"{text}\"")), "{reason}");
    }
}

/// Whether a join of `alias` now gets it unmodified (the name is free).
fn name_is_free(stack: &Stack, group: &str, identity: &str, alias: &str) -> bool {
    let m = member(stack, group, identity, alias);
    let free = assigned(&m.ok).is_none();
    let mut m = m;
    assert_eq!(leave(&mut m.sip, &m.inv, &m.ok).code, 200);
    free
}

/// The log lines of the focus's removals, once there are `n` (the log is written by another
/// process: wait a little for it).
fn removal_lines(stack: &Stack, n: usize) -> Vec<String> {
    let lines = |s: &Stack| -> Vec<String> {
        s.log()
            .lines()
            .filter(|l| l.contains("removed \""))
            .map(str::to_string)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = lines(stack);
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_participant_that_never_binds_gets_a_bye_and_its_name_is_free() {
    let stack = stack("ghost-unbound", None);
    let mut ghost = member(&stack, LOUNGE, "sip:ghost@example.com", "casper");
    let t0 = Instant::now();
    // While the place is held, the same name is given a suffix: the check below can fail.
    assert!(!name_is_free(
        &stack,
        LOUNGE,
        "sip:probe@example.com",
        "casper"
    ));
    ghost.expect_removal(
        t0,
        LIMIT,
        "bind_timeout",
        "408",
        "MSRP session not established",
    );
    // The BYE is not answered at all: the place is free anyway.
    assert!(name_is_free(
        &stack,
        LOUNGE,
        "sip:other@example.com",
        "casper"
    ));
    let lines = removal_lines(&stack, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("\"casper\"")
            && lines[0].contains("lounge@im.example.net")
            && lines[0].contains("not bound"),
        "{lines:?}"
    );
    assert!(
        !lines[0].contains("ghost@example.com"),
        "no real identity at INFO: {lines:?}"
    );
    // Its own BYE afterwards (a crossing BYE) is still answered 200, not 481; one with another
    // To-tag is not in that dialog.
    let forged = ghost.inv.bye(&ghost.sip, "not-the-focus-tag");
    let r = ghost
        .sip
        .transact(&forged, Duration::from_secs(5))
        .expect("answer");
    assert_eq!(r.code, 481, "{}", r.raw_text());
    assert_eq!(leave(&mut ghost.sip, &ghost.inv, &ghost.ok).code, 200);
    let (_, stats) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(
        stats.contains("chat_alias:removed_never_bound = 1"),
        "{stats}"
    );
    assert!(
        stats.contains("chat_alias:removed_msrp_gone = 0"),
        "{stats}"
    );
}

#[test]
fn a_participant_whose_msrp_connection_is_gone_is_removed_one_that_reconnects_is_kept() {
    let stack = stack("ghost-gone", None);
    let mut killed = member(&stack, LOUNGE, "sip:killed@example.com", "kenny");
    let mut flaky = member(&stack, LOUNGE, "sip:flaky@example.com", "flo");
    killed.bind();
    flaky.bind();
    // Both bound: nothing happens past bind_timeout.
    assert!(killed.expect_bye(Duration::from_secs(LIMIT + 1)).is_none());
    killed.kill_msrp();
    let t_kill = Instant::now();
    // flaky loses its connection too, and reconnects within the limit.
    flaky.kill_msrp();
    std::thread::sleep(Duration::from_millis(500));
    flaky.bind();
    let bye = killed.expect_removal(
        t_kill,
        LIMIT,
        "msrp_gone_timeout",
        "408",
        "MSRP connection lost",
    );
    killed.sip.answer(&bye, 200, "OK");
    assert!(name_is_free(
        &stack,
        LOUNGE,
        "sip:other@example.com",
        "kenny"
    ));
    // The one that reconnected is kept: no BYE, still listed, still bound.
    assert!(flaky.expect_bye(Duration::from_secs(LIMIT + 1)).is_none());
    assert!(!name_is_free(
        &stack,
        LOUNGE,
        "sip:other@example.com",
        "flo"
    ));
    let (_, list) = stack.kamcmd(&["chat_alias.list"]);
    assert!(list.contains("flo"), "{list}");
    assert!(!list.contains("kenny"), "{list}");
    let lines = removal_lines(&stack, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("\"kenny\"") && lines[0].contains("gone"),
        "{lines:?}"
    );
    assert_eq!(leave(&mut flaky.sip, &flaky.inv, &flaky.ok).code, 200);
}

fn groups_copy(name: &str) -> PathBuf {
    let tmp = support::repo().join(format!("target/e2e/{name}-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    support::copy_groups(&tmp);
    tmp
}

#[test]
fn a_reload_that_removes_an_occupied_group_ends_its_conference() {
    let dir = groups_copy("ghost-reload");
    let stack = stack("ghost-reload", Some(dir.clone()));
    let mut alice = member(&stack, QUIET, "sip:alice@example.com", "al");
    let mut bob = member(&stack, QUIET, "sip:bob@example.com", "bo");
    let mut lounger = member(&stack, LOUNGE, "sip:lounger@example.com", "lou");
    alice.bind();
    bob.bind();
    lounger.bind();
    std::fs::remove_file(dir.join("quiet.xml")).unwrap();
    let (ok, out) = stack.kamcmd(&["chat_alias.reload"]);
    assert!(ok && out.contains("reloaded"), "{out}");
    // Bob hangs up himself meanwhile: his BYE still matches and gets 200 (not 481).
    assert_eq!(leave(&mut bob.sip, &bob.inv, &bob.ok).code, 200);
    let bye = alice
        .expect_bye(Duration::from_secs(3))
        .expect("a BYE to the participant of the removed group");
    alice.check_bye(&bye, "410", "Group removed");
    alice.sip.answer(&bye, 200, "OK");
    // Their relay sessions are closed too.
    assert!(alice
        .msrp
        .as_mut()
        .unwrap()
        .wait_closed(Duration::from_secs(3)));
    // The other group's participant is untouched.
    assert!(lounger.expect_bye(Duration::from_millis(1500)).is_none());
    let (_, list) = stack.kamcmd(&["chat_alias.list"]);
    assert!(
        list.contains("lou") && !list.contains("\"al\"") && !list.contains("quiet"),
        "{list}"
    );
    assert!(
        removal_lines(&stack, 1).iter().any(|l| l.contains("\"al\"")
            && l.contains("quiet@im.example.net")
            && l.contains("group removed")),
        "{:?}",
        removal_lines(&stack, 1)
    );
    // A late in-dialog BYE from alice (she already got ours) is answered 200 too.
    assert_eq!(leave(&mut alice.sip, &alice.inv, &alice.ok).code, 200);
}

#[test]
fn a_reload_to_an_empty_directory_is_refused_unless_forced() {
    let dir = groups_copy("ghost-empty");
    let stack = stack("ghost-empty", Some(dir.clone()));
    let mut m = member(&stack, LOUNGE, "sip:stay@example.com", "stay");
    m.bind();
    for e in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    // kamcmd prints an RPC fault as "error: <code> - <text>".
    let (_, out) = stack.kamcmd(&["chat_alias.reload"]);
    assert!(
        out.contains("error:") && out.contains("holds no group"),
        "{out}"
    );
    assert!(out.contains("chat_alias.reload force"), "{out}");
    assert!(
        m.expect_bye(Duration::from_millis(1500)).is_none(),
        "nothing ended"
    );
    let probe = member(&stack, LOUNGE, "sip:probe@example.com", "probe");
    let mut probe = probe;
    assert_eq!(leave(&mut probe.sip, &probe.inv, &probe.ok).code, 200);
    let (_, out) = stack.kamcmd(&["chat_alias.reload", "nonsense"]);
    assert!(out.contains("error:") && out.contains("force"), "{out}");
    let (ok, out) = stack.kamcmd(&["chat_alias.reload", "force"]);
    assert!(ok && out.contains("reloaded 0 groups"), "{out}");
    let bye = m
        .expect_bye(Duration::from_secs(3))
        .expect("BYE after a forced empty reload");
    m.check_bye(&bye, "410", "Group removed");
    let mut c = stack.client(Transport::Udp);
    assert_eq!(
        join(
            &mut c,
            &Invite::anonymous(LOUNGE, "sip:late@example.com", Some("late"))
        )
        .code,
        404
    );
}

#[test]
fn a_dialog_that_lasts_dialog_timeout_gets_a_bye_and_its_name_is_free() {
    // Only the dialog's lifetime acts here: the MSRP checks are off.
    let stack = Stack::start_with(
        "ghost-expired",
        StackOptions {
            dialog_timeout: LIMIT as u32,
            defines: vec![
                ("BIND_TIMEOUT".into(), "0".into()),
                ("MSRP_GONE_TIMEOUT".into(), "0".into()),
            ],
            ..Default::default()
        },
    );
    let mut old = member(&stack, LOUNGE, "sip:old@example.com", "methuselah");
    let t0 = Instant::now();
    old.expect_removal(
        t0,
        LIMIT,
        "dialog_timeout",
        "408",
        "Dialog time limit reached",
    );
    assert!(name_is_free(
        &stack,
        LOUNGE,
        "sip:young@example.com",
        "methuselah"
    ));
    let lines = removal_lines(&stack, 1);
    assert!(
        lines.iter().any(|l| l.contains("\"methuselah\"")
            && l.contains("lounge@im.example.net")
            && l.contains("dialog_timeout")
            && !l.contains("old@example.com")),
        "{lines:?}"
    );
    let (_, stats) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(stats.contains("chat_alias:removed_expired = 1"), "{stats}");
    // The participant's own BYE crossing the focus's is still answered 200.
    assert_eq!(leave(&mut old.sip, &old.inv, &old.ok).code, 200);
}

/// The focus's BYE follows the route set the INVITE's Record-Route built (RFC 3261 §12.1.1,
/// §12.2.1.1): it is kept with the participant's dialog and restored when the BYE leaves.
#[test]
fn the_focus_bye_follows_the_record_route_set() {
    let stack = Stack::start_with(
        "ghost-route",
        StackOptions {
            dialog_timeout: LIMIT as u32,
            defines: vec![
                ("BIND_TIMEOUT".into(), "0".into()),
                ("MSRP_GONE_TIMEOUT".into(), "0".into()),
            ],
            ..Default::default()
        },
    );
    let mut sip = stack.client(Transport::Udp);
    let mut inv = Invite::anonymous(LOUNGE, "sip:routed@example.com", Some("routed"));
    // A loose-routing proxy in front of the participant: this test's own socket, so the BYE
    // reaches the test whatever it is routed through.
    let proxy = format!("<sip:127.0.0.1:{};lr>", sip.local_port);
    inv.extra_headers = vec![format!("Record-Route: {proxy}")];
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200, "{}", ok.raw_text());
    let bye = sip
        .recv_request(Duration::from_secs(LIMIT + 3))
        .expect("the focus's BYE after dialog_timeout");
    let raw = bye.raw_text();
    assert_eq!(bye.method, "BYE", "{raw}");
    assert_eq!(bye.header("Call-ID"), Some(inv.call_id.as_str()), "{raw}");
    assert_eq!(bye.tag_of("To"), Some(inv.from_tag.clone()), "{raw}");
    assert_eq!(bye.tag_of("From"), ok.to_tag(), "{raw}");
    assert_eq!(bye.header("Route"), Some(proxy.as_str()), "{raw}");
    // Loose routing: the Request-URI stays the remote target, the participant's Contact.
    assert!(
        bye.uri
            .starts_with(&format!("sip:127.0.0.1:{}", sip.local_port)),
        "{raw}"
    );
    assert!(
        bye.header("Reason")
            .is_some_and(|r| r.contains("Dialog time limit reached")),
        "{raw}"
    );
}
