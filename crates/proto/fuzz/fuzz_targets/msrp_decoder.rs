//! `msrp::Decoder`: never panics on any byte stream fed in any split, keeps `buffered()` within
//! its bound, stays dead after a Framing error; `msrp::parse_uri` never panics and round-trips.
#![no_main]
use chat_alias_proto::msrp::{self, Decoder, Event, Limits, MsrpError, MAX_END_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0: piece size (1..=256, 0 = everything at once); byte 1: head limit selector.
    let Some((&[size, head], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = Limits {
        max_head_bytes: if head & 1 == 0 {
            64 + usize::from(head) * 4
        } else {
            16 * 1024
        },
        max_non_send_body: usize::from(head >> 4) * 64,
    };
    let bound = limits.max_head_bytes + MAX_END_LINE;
    let piece = if size == 0 {
        rest.len().max(1)
    } else {
        usize::from(size)
    };
    let mut d = Decoder::new(limits);
    let mut dead = false;
    for chunk in rest.chunks(piece) {
        d.feed(chunk);
        assert!(d.buffered() <= bound + chunk.len());
        loop {
            match d.poll() {
                Ok(None) => break,
                Ok(Some(Event::Body(b))) => assert!(!b.is_empty()),
                Ok(Some(Event::Request(h))) => {
                    let mut out = Vec::new();
                    msrp::encode::request_head(&h, &mut out);
                }
                Ok(Some(_)) | Err(MsrpError::Malformed { .. }) | Err(MsrpError::BadUri(_)) => {}
                Err(MsrpError::Framing(_)) => {
                    dead = true;
                    break;
                }
            }
        }
        assert!(d.buffered() <= bound);
        if dead {
            assert!(matches!(d.poll(), Err(MsrpError::Framing(_))));
            assert_eq!(d.buffered(), 0);
        }
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Ok(u) = msrp::parse_uri(s) {
            assert_eq!(msrp::parse_uri(&u.to_string()), Ok(u));
        }
    }
});
