//! `sip::message`: `SipMessage::parse` never panics and what parses composes to bytes that parse
//! back the same; the `StreamDecoder` fed the input in two pieces never panics.
#![no_main]
use chat_alias_proto::sip::message::{SipMessage, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SipMessage::parse(data) {
        let again = SipMessage::parse(&m.to_bytes()).expect("composed message parses");
        assert_eq!(again.start, m.start);
        assert_eq!(again.body, m.body);
    }
    let mut d = StreamDecoder::default();
    let (a, b) = data.split_at(data.len() / 2);
    d.feed(a);
    while let Some(Ok(_)) = d.poll() {}
    d.feed(b);
    while let Some(Ok(_)) = d.poll() {}
});
