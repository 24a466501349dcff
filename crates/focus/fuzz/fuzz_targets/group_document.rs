//! `GroupSet::from_documents`: arbitrary bytes never panic; a document that loads answers lookups
//! and policy questions for its own groups without panicking either.
#![no_main]
use chat_alias_focus::groups::GroupSet;
use chat_alias_proto::sip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let Ok(set) = GroupSet::from_documents(&[("fuzz.xml".to_string(), text)]) else {
        return;
    };
    let who = sip::parse_uri("sip:bob@example.com").expect("literal URI");
    for g in set.iter() {
        assert!(
            set.find(&g.uri).is_some(),
            "a loaded group is found by its own URI"
        );
        let _ = g.permissions(&who, true);
        let _ = g.permissions(&who, false);
    }
});
