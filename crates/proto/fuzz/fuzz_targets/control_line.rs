//! `control::decode`: a line from the control socket never panics, and whatever decodes
//! re-encodes to a line that decodes to the same request.
#![no_main]
use chat_alias_proto::control::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = control::decode::<Request>(data) {
        let line = control::encode(&req);
        assert_eq!(
            control::decode::<Request>(&line).expect("re-encoded line decodes"),
            req
        );
    }
});
