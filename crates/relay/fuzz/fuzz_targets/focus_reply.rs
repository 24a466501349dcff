//! The relay reading a datagram from the focus socket (`focus_reply`): JSON-RPC responses to its
//! `chat_alias.nickname`, `chat_alias.sessions` and `chat_alias.missing` questions, read the way
//! the relay's driver reads them (one JSON value, then by id). Whatever the datagram:
//! - nothing panics;
//! - a NICKNAME answer names a non-empty display name or none (`Named(Some(""))` would set an
//!   empty one);
//! - a sessions page yields at most as many participants as it has records, each with the
//!   session, conference, URI and peer path a `join` needs, and registering them (as the resync
//!   does) is accepted or refused without panicking; the registry holds what it accepted.
#![no_main]
use chat_alias_relay::focus_reply::{
    id_of, parse_missing, parse_reply, parse_reply_value, parse_sessions,
};
use chat_alias_relay::registry::Registry;
use chat_alias_relay::switch::FocusOutcome;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let reply = parse_reply(data);
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        assert!(reply.is_none(), "no answer is read from what is not JSON");
        return;
    };
    let id = id_of(&v);
    let read = parse_reply_value(&v);
    assert_eq!(read, reply);
    if let Some((ask, outcome)) = read {
        assert_eq!(Some(ask), id, "an answer is matched by its id");
        if let FocusOutcome::Named(Some(name)) = &outcome {
            assert!(!name.is_empty(), "an empty display_name means none");
        }
    }
    if let Some(missing) = parse_missing(&v) {
        assert!(missing.len() <= v["result"]["missing"].as_array().map_or(0, Vec::len));
    }
    if let Ok((page, records)) = parse_sessions(&v) {
        assert!(page.len() as u64 <= records);
        let mut registry = Registry::default();
        for p in page {
            assert!(!p.session.is_empty() && !p.conference.is_empty() && !p.uri.is_empty());
            assert!(!p.peer_path.is_empty());
            assert!(p.display_name.as_ref().is_none_or(|n| !n.is_empty()));
            let session = p.session.clone();
            if registry.join(p).is_ok() {
                assert!(registry.get(&session).is_some());
            }
        }
    }
});
