//! The relay reading a datagram from the focus socket (`control::focus_socket::Reply`): the
//! answers to its NICKNAME, `sessions` and `missing` questions. Whatever the datagram:
//! - nothing panics;
//! - a NICKNAME answer names a non-empty display name or none (`Named(Some(""))` would set an
//!   empty one);
//! - a sessions page yields at most as many participants as it has records, each with the
//!   session, conference, URI and peer path a `join` needs, and registering them (as the resync
//!   does) is accepted or refused without panicking; the registry holds what it accepted;
//! - a `missing` answer names at most as many sessions as its list holds.
#![no_main]
use chat_alias_proto::control::focus_socket::{NicknameVerdict, Reply};
use chat_alias_relay::registry::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(reply) = Reply::parse(data) else {
        return;
    };
    if let NicknameVerdict::Named(Some(name)) = reply.nickname() {
        assert!(!name.is_empty(), "an empty display_name means none");
    }
    if let Some(missing) = reply.missing() {
        let listed = reply.body()["result"]["missing"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(missing.len() <= listed);
    }
    if let Ok((page, records)) = reply.sessions() {
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
