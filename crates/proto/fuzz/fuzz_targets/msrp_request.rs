//! The MSRP request head as a stranger writes it: fuzz data becomes the header lines (and body)
//! of a SEND between a valid start line and end-line, so the header parsers (To-Path/From-Path
//! URIs, Message-ID, Byte-Range, Failure-/Success-Report, Use-Nickname, Content-Type, Status) are
//! reached without the fuzzer having to find the framing first. Never panics; a request that
//! decodes re-encodes to one that decodes to the same head.
#![no_main]
use chat_alias_proto::msrp::{self, Decoder, Event, Limits, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the method; the rest are header lines (and possibly a body). The transaction
    // id must be a valid ident (4 to 32 characters, RFC 4975 §9): with a shorter one every input
    // stopped at the start line.
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = ["SEND", "NICKNAME", "REPORT", "AUTH"][usize::from(m % 4)];
    let mut frame = format!(
        "MSRP tx01 {method}\r\nTo-Path: msrp://127.0.0.1:2855/s1;tcp\r\nFrom-Path: msrp://192.0.2.1:7/p;tcp\r\n"
    )
    .into_bytes();
    frame.extend_from_slice(rest);
    frame.extend_from_slice(b"\r\n-------tx01$\r\n");
    let mut d = Decoder::new(Limits::default());
    d.feed(&frame);
    while let Ok(Some(ev)) = d.poll() {
        if let Event::Request(h) = ev {
            if let Some(r) = h.byte_range {
                if let Some(e) = r.end {
                    // `n-(n-1)` is the empty range; anything else ends at or after its start.
                    assert!(e.saturating_add(1) >= r.start, "{r}");
                }
            }
            for u in h.to_path.iter().chain(&h.from_path) {
                assert!(msrp::parse_uri(u).is_ok(), "path URIs are validated: {u:?}");
            }
            if h.method == Method::Send && h.content_type.is_none() {
                continue;
            }
            let mut out = Vec::new();
            msrp::encode::request_head(&h, &mut out);
            msrp::encode::end_line(&h.transaction_id, msrp::Continuation::End, false, &mut out);
            let mut again = Decoder::new(Limits::default());
            again.feed(&out);
            if let Ok(Some(Event::Request(h2))) = again.poll() {
                assert_eq!(h2.byte_range, h.byte_range);
                assert_eq!(h2.message_id, h.message_id);
                assert_eq!(h2.use_nickname, h.use_nickname);
                assert_eq!(h2.to_path, h.to_path);
                assert_eq!(h2.from_path, h.from_path);
            }
        }
    }
});
