use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::sip::{parse_uri, Uri};
use super::*;

const BOOKCLUB: &str = include_str!("../../../../kamailio/groups/bookclub.xml");
const OPEN_LOUNGE: &str = include_str!("../../../../kamailio/groups/open-lounge.xml");
const SMALL_ROOM: &str = include_str!("../../../../kamailio/groups/small-room.xml");
const NO_RULESET: &str = include_str!("../../../../kamailio/groups/no-ruleset.xml");
const QUIET: &str = include_str!("../../../../kamailio/groups/quiet.xml");

fn uri(s: &str) -> Uri {
    parse_uri(s).unwrap_or_else(|e| panic!("test URI {s}: {e}"))
}

fn load(xml: &str) -> Result<GroupSet, LoadError> {
    GroupSet::from_documents(&[("test.xml".to_string(), xml.to_string())])
}

fn load_ok(xml: &str) -> GroupSet {
    load(xml).unwrap_or_else(|e| panic!("document refused: {e}\n{xml}"))
}

fn load_err(xml: &str) -> LoadError {
    match load(xml) {
        Ok(_) => panic!("document accepted:\n{xml}"),
        Err(e) => e,
    }
}

/// A document with the usual prefixes and one list-service `sip:g@example.net` whose body is given.
fn doc(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<group xmlns="urn:oma:xml:poc:list-service"
       xmlns:rl="urn:ietf:params:xml:ns:resource-lists"
       xmlns:cp="urn:ietf:params:xml:ns:common-policy"
       xmlns:ocp="urn:oma:xml:xdm:common-policy"
       xmlns:oxe="urn:oma:xml:xdm:extensions">
  <list-service uri="sip:g@example.net">
{body}
  </list-service>
</group>
"#
    )
}

/// A list of alice, bob (example.com) and tel:+15551234567, plus the given rules.
fn doc_with_rules(rules: &str) -> String {
    doc(&format!(
        r#"<list>
  <entry uri="sip:alice@example.com"/>
  <entry uri="sip:bob@example.com"/>
  <entry uri="tel:+15551234567"/>
</list>
<cp:ruleset>
{rules}
</cp:ruleset>"#
    ))
}

fn only_group(set: &GroupSet) -> &Group {
    assert_eq!(set.len(), 1);
    set.iter().next().unwrap()
}

fn perms(g: &Group, who: &str, anonymous: bool) -> Permissions {
    g.permissions(&uri(who), anonymous)
}

/// 1-based line and column of the first `needle` in `text` (independent of the parser's own code).
fn pos_of(text: &str, needle: &str) -> (u32, u32) {
    let idx = text.find(needle).expect("needle in text");
    let before = &text[..idx];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() as u32 + 1;
    (line, col)
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kamailio/groups")
}

/// A fresh, empty temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "chat-alias-groups-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// The OMA XDM group-usage example (OMA-TS-XDM_Group, a list-service with common-policy rules) and the sample documents

#[test]
fn spec_example_bookclub() {
    let set = load_ok(BOOKCLUB);
    let g = set.find("sip:bookclub@im.example.net").expect("bookclub");
    assert_eq!(g.uri, "sip:bookclub@im.example.net");
    assert_eq!(g.display_name.as_deref(), Some("Book Club"));
    assert_eq!(g.max_participants, Some(25));
    assert!(!g.invite_members());
    assert!(g.has_ruleset());
    assert_eq!(g.members().count(), 4);

    // Bob: members + anon-ok.
    let bob = perms(g, "sip:bob@example.com", true);
    assert!(bob.allow_anonymity && bob.join_handling && bob.allow_private_message);
    assert!(bob.allow_conference_state && bob.allow_initiate_conference);
    // Alice: only members → no anonymity, but may join.
    let alice = perms(g, "sip:alice@example.com", true);
    assert!(!alice.allow_anonymity);
    assert!(alice.join_handling && alice.allow_private_message);
    // Carol: member, and anonymity through <many domain>.
    let carol = perms(g, "sip:carol@partner.example.org", true);
    assert!(carol.allow_anonymity && carol.join_handling);
    // A non-member of partner.example.org: anonymity yes, joining no.
    let dave = perms(g, "sip:dave@partner.example.org", true);
    assert!(dave.allow_anonymity);
    assert!(!dave.join_handling && !dave.allow_initiate_conference);
    // The domain comparison ignores case.
    assert!(perms(g, "sip:dave@Partner.Example.ORG", true).allow_anonymity);
    // An outsider: nothing at all.
    assert_eq!(
        perms(g, "sip:mallory@evil.example", false),
        Permissions::default()
    );
    // The tel: member is a member.
    assert!(g.is_member(&uri("tel:+15551234567")));
    let tel = perms(g, "tel:+15551234567", false);
    assert!(tel.join_handling && !tel.allow_anonymity);
    // Nothing depends on the anonymous flag here.
    for who in [
        "sip:alice@example.com",
        "sip:bob@example.com",
        "sip:dave@partner.example.org",
    ] {
        assert_eq!(perms(g, who, true), perms(g, who, false));
    }
}

#[test]
fn sample_directory_loads_every_group() {
    let (set, docs) = GroupSet::load_dir(&samples_dir()).expect("samples load");
    assert_eq!(docs.len(), 5);
    // Sorted by file name.
    let names: Vec<_> = docs
        .iter()
        .map(|(f, _)| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "bookclub.xml",
            "no-ruleset.xml",
            "open-lounge.xml",
            "quiet.xml",
            "small-room.xml"
        ]
    );
    assert_eq!(set.len(), 6);
    let uris: Vec<_> = set.iter().map(|g| g.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:bookclub@im.example.net",
            "sip:members-only@im.example.net",
            "sip:lounge@im.example.net",
            "sip:lounge2@im.example.net",
            "sip:quiet@im.example.net",
            "sip:smallroom@im.example.net",
        ]
    );
    // The documents returned rebuild the same set elsewhere.
    let again = GroupSet::from_documents(&docs).unwrap();
    assert_eq!(again.len(), set.len());
    // And the embedded copies are the same files.
    for (text, name) in [
        (BOOKCLUB, "bookclub.xml"),
        (OPEN_LOUNGE, "open-lounge.xml"),
        (SMALL_ROOM, "small-room.xml"),
        (NO_RULESET, "no-ruleset.xml"),
        (QUIET, "quiet.xml"),
    ] {
        assert!(docs.iter().any(|(f, t)| f.ends_with(name) && t == text));
    }
}

#[test]
fn sample_open_lounge_admits_anyone() {
    let set = load_ok(OPEN_LOUNGE);
    assert_eq!(set.len(), 2);
    for (u, name) in [
        ("sip:lounge@im.example.net", "Open Lounge"),
        ("sip:lounge2@im.example.net", "Open Lounge 2"),
    ] {
        let g = set.find(u).unwrap();
        assert_eq!(g.display_name.as_deref(), Some(name));
        assert_eq!(g.max_participants, None);
        for i in 0..50 {
            let who = format!("sip:user{i}@load{}.example", i % 7);
            let p = perms(g, &who, i % 2 == 0);
            assert!(p.join_handling && p.allow_initiate_conference);
            assert!(p.allow_anonymity && p.allow_private_message && p.allow_conference_state);
            assert!(!p.allow_invite_users_dynamically && !p.is_key_participant);
        }
        assert!(perms(g, "tel:+4930123456", true).join_handling);
    }
}

#[test]
fn sample_small_room() {
    let set = load_ok(SMALL_ROOM);
    let g = set.find("sip:smallroom@im.example.net").unwrap();
    assert_eq!(g.max_participants, Some(2));
    for who in [
        "sip:alice@example.com",
        "sip:bob@example.com",
        "sip:carol@example.com",
    ] {
        let p = perms(g, who, true);
        assert!(
            p.join_handling && p.allow_anonymity && p.allow_private_message,
            "{who}"
        );
    }
    assert_eq!(
        perms(g, "sip:carol@partner.example.org", true),
        Permissions::default()
    );
}

#[test]
fn sample_no_ruleset() {
    let set = load_ok(NO_RULESET);
    let g = set.find("sip:members-only@im.example.net").unwrap();
    assert!(!g.has_ruleset());
    for who in ["sip:alice@example.com", "sip:bob@example.com"] {
        assert_eq!(perms(g, who, true), Permissions::members_without_ruleset());
        let p = perms(g, who, false);
        assert!(p.join_handling && p.allow_initiate_conference && p.allow_conference_state);
        assert!(!p.allow_anonymity && !p.allow_private_message);
        assert!(!p.allow_invite_users_dynamically && !p.is_key_participant);
    }
    assert_eq!(
        perms(g, "sip:carol@example.com", false),
        Permissions::default()
    );
}

#[test]
fn sample_quiet() {
    let set = load_ok(QUIET);
    let g = set.find("sip:quiet@im.example.net").unwrap();
    for who in [
        "sip:alice@example.com",
        "sip:bob@example.com",
        "sip:carol@partner.example.org",
    ] {
        let p = perms(g, who, true);
        assert!(p.join_handling && p.allow_anonymity, "{who}");
        assert!(!p.allow_private_message, "{who}");
    }
    assert!(!perms(g, "sip:dave@example.com", true).join_handling);
}

// ---------------------------------------------------------------------------------------------
// Namespaces and prefixes

#[test]
fn any_prefix_for_the_list_service_namespace() {
    let xml = r#"<?xml version="1.0"?>
<foo:group xmlns:foo="urn:oma:xml:poc:list-service"
           xmlns:pol="urn:ietf:params:xml:ns:common-policy"
           xmlns:x="urn:oma:xml:xdm:extensions">
  <foo:list-service uri="sip:prefixed@example.net">
    <foo:display-name>Prefixed</foo:display-name>
    <foo:list><foo:entry uri="sip:alice@example.com"/></foo:list>
    <foo:max-participant-count>3</foo:max-participant-count>
    <pol:ruleset>
      <pol:rule id="m">
        <pol:conditions><foo:is-list-member/></pol:conditions>
        <pol:actions>
          <foo:join-handling>true</foo:join-handling>
          <foo:allow-anonymity>true</foo:allow-anonymity>
          <x:allow-private-message>true</x:allow-private-message>
        </pol:actions>
      </pol:rule>
    </pol:ruleset>
  </foo:list-service>
</foo:group>"#;
    let set = load_ok(xml);
    let g = set.find("sip:prefixed@example.net").unwrap();
    assert_eq!(g.display_name.as_deref(), Some("Prefixed"));
    assert_eq!(g.max_participants, Some(3));
    let p = perms(g, "sip:alice@example.com", true);
    assert!(p.join_handling && p.allow_anonymity && p.allow_private_message);
    assert!(!perms(g, "sip:bob@example.com", true).join_handling);
}

#[test]
fn default_namespace_declared_as_common_policy() {
    // The ruleset switches the default namespace to common-policy; list-service elements inside it
    // then need a prefix.
    let xml = r#"<ls:group xmlns:ls="urn:oma:xml:poc:list-service">
  <ls:list-service uri="sip:cpdefault@example.net">
    <ls:list><ls:entry uri="sip:alice@example.com"/></ls:list>
    <ruleset xmlns="urn:ietf:params:xml:ns:common-policy">
      <rule id="a">
        <conditions>
          <identity><one id="sip:alice@example.com"/></identity>
        </conditions>
        <actions><ls:allow-anonymity>true</ls:allow-anonymity></actions>
      </rule>
      <rule id="b">
        <conditions><ls:is-list-member/></conditions>
        <actions><ls:join-handling>true</ls:join-handling></actions>
      </rule>
    </ruleset>
  </ls:list-service>
</ls:group>"#;
    let set = load_ok(xml);
    let g = only_group(&set);
    let p = perms(g, "sip:alice@example.com", true);
    assert!(p.allow_anonymity && p.join_handling);
}

#[test]
fn same_prefix_bound_to_another_namespace_is_not_ours() {
    // `cp` here is NOT common-policy: <cp:ruleset> is a foreign element and ignored, so the
    // list-service has no ruleset.
    let xml = r#"<group xmlns="urn:oma:xml:poc:list-service" xmlns:cp="urn:example:other">
  <list-service uri="sip:g@example.net">
    <list><entry uri="sip:alice@example.com"/></list>
    <cp:ruleset><cp:rule id="x"/></cp:ruleset>
  </list-service>
</group>"#;
    let set = load_ok(xml);
    let g = only_group(&set);
    assert!(!g.has_ruleset());
    assert_eq!(
        perms(g, "sip:alice@example.com", false),
        Permissions::members_without_ruleset()
    );
}

#[test]
fn resource_lists_entries_nested_lists_and_references() {
    let xml = doc(r#"<list>
  <rl:display-name>people</rl:display-name>
  <rl:entry uri="sip:alice@example.com"><rl:display-name>Alice</rl:display-name></rl:entry>
  <entry uri="sip:bob@example.com"/>
  <rl:list name="sub">
    <rl:entry uri="sip:carol@example.com"/>
  </rl:list>
  <rl:entry-ref ref="resource-lists/users/sip:x@example.com/index/~~/resource-lists/list%5B@name=%22a%22%5D/entry%5B1%5D"/>
  <rl:external anchor="http://xcap.example.com/resource-lists/users/sip:x@example.com/index/~~/resource-lists/list%5B@name=%22b%22%5D"/>
  <foreign:thing xmlns:foreign="urn:example:foreign"/>
</list>"#);
    let set = load_ok(&xml);
    let g = only_group(&set);
    for who in [
        "sip:alice@example.com",
        "sip:bob@example.com",
        "sip:carol@example.com",
    ] {
        assert!(g.is_member(&uri(who)), "{who}");
    }
    assert_eq!(g.members().count(), 3);
    assert!(!g.is_member(&uri("sip:x@example.com")));
}

#[test]
fn list_in_resource_lists_namespace_is_accepted() {
    let xml = doc(r#"<rl:list><rl:entry uri="sip:alice@example.com"/></rl:list>"#);
    let set = load_ok(&xml);
    assert!(only_group(&set).is_member(&uri("sip:alice@example.com")));
}

// ---------------------------------------------------------------------------------------------
// Values

#[test]
fn booleans_with_whitespace_and_digits() {
    let xml = doc_with_rules(
        "<cp:rule id=\"a\">
  <cp:conditions><is-list-member/></cp:conditions>
  <cp:actions>
    <join-handling>
       1
    </join-handling>
    <allow-anonymity>\t true \r\n</allow-anonymity>
    <allow-conference-state>0</allow-conference-state>
    <oxe:allow-private-message> false </oxe:allow-private-message>
    <allow-initiate-conference><!-- yes -->true</allow-initiate-conference>
    <is-key-participant><![CDATA[1]]></is-key-participant>
  </cp:actions>
</cp:rule>",
    );
    let set = load_ok(&xml);
    let p = perms(only_group(&set), "sip:alice@example.com", false);
    assert!(p.join_handling && p.allow_anonymity && p.allow_initiate_conference);
    assert!(p.is_key_participant);
    assert!(!p.allow_conference_state && !p.allow_private_message);
}

#[test]
fn invalid_booleans_refused() {
    for bad in ["allow", "TRUE", "yes", "", "2", "true false", "\u{a0}true"] {
        let xml = doc_with_rules(&format!(
            "<cp:rule id=\"a\"><cp:actions><allow-anonymity>{bad}</allow-anonymity></cp:actions></cp:rule>"
        ));
        let e = load_err(&xml);
        assert!(
            e.reason.starts_with("invalid xs:boolean"),
            "{bad:?}: {}",
            e.reason
        );
    }
    // invite-members too.
    let e = load_err(&doc("<invite-members>no</invite-members>"));
    assert!(e.reason.contains("in <invite-members>"), "{}", e.reason);
}

#[test]
fn old_draft_allow_refused_with_file_line_and_column() {
    let xml = doc_with_rules(
        r#"<cp:rule id="old">
  <cp:conditions><is-list-member/></cp:conditions>
  <cp:actions>
    <join-handling>allow</join-handling>
  </cp:actions>
</cp:rule>"#,
    );
    let e = load_err(&xml);
    let (line, col) = pos_of(&xml, "<join-handling>allow");
    assert_eq!(e.file, "test.xml");
    assert_eq!((e.line, e.column), (Some(line), Some(col)));
    assert!(
        e.reason
            .starts_with("invalid xs:boolean 'allow' in <join-handling>"),
        "{}",
        e.reason
    );
    assert_eq!(
        e.to_string(),
        format!(
            "test.xml:{line}:{col}: invalid xs:boolean 'allow' in <join-handling> (expected true, false, 1 or 0)"
        )
    );
}

#[test]
fn max_participant_count_values() {
    for (text, want) in [
        ("25", 25),
        (" 7\n", 7),
        ("+5", 5),
        ("007", 7),
        ("4294967295", u32::MAX),
    ] {
        let set = load_ok(&doc(&format!(
            "<max-participant-count>{text}</max-participant-count>"
        )));
        assert_eq!(only_group(&set).max_participants, Some(want), "{text:?}");
    }
    for bad in ["0", "-1", "abc", "", "1.5", "+", "000", "1 2", "-0"] {
        let e = load_err(&doc(&format!(
            "<max-participant-count>{bad}</max-participant-count>"
        )));
        assert!(
            e.reason
                .starts_with("max-participant-count must be a positive integer"),
            "{bad:?}: {}",
            e.reason
        );
    }
    let e = load_err(&doc(
        "<max-participant-count>4294967296</max-participant-count>",
    ));
    assert!(e.reason.contains("too large"), "{}", e.reason);
}

#[test]
fn display_name_handling() {
    let set = load_ok(&doc(
        "<display-name xml:lang=\"en\">  Chess &amp; Go\n</display-name><display-name xml:lang=\"fr\">Échecs</display-name>",
    ));
    assert_eq!(only_group(&set).display_name.as_deref(), Some("Chess & Go"));
    let set = load_ok(&doc("<display-name>  </display-name>"));
    assert_eq!(only_group(&set).display_name, None);
    let set = load_ok(&doc(""));
    assert_eq!(only_group(&set).display_name, None);
    let e = load_err(&doc("<display-name>a<b/></display-name>"));
    assert!(e.reason.contains("must contain only text"), "{}", e.reason);
}

// ---------------------------------------------------------------------------------------------
// Conditions

#[test]
fn identity_one_many_and_except() {
    let xml = doc_with_rules(
        r#"<cp:rule id="domain-but-eve">
  <cp:conditions>
    <cp:identity>
      <cp:many domain="Example.COM"><cp:except id="sip:eve@example.com"/></cp:many>
    </cp:identity>
  </cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions>
</cp:rule>
<cp:rule id="anyone-but-evil">
  <cp:conditions>
    <cp:identity>
      <cp:many>
        <cp:except domain="evil.example"/>
        <cp:except id="sip:zed@example.org"/>
      </cp:many>
    </cp:identity>
  </cp:conditions>
  <cp:actions><allow-conference-state>true</allow-conference-state></cp:actions>
</cp:rule>
<cp:rule id="one">
  <cp:conditions>
    <cp:identity><cp:one id="sip:frank@elsewhere.example"/></cp:identity>
  </cp:conditions>
  <cp:actions><allow-anonymity>true</allow-anonymity></cp:actions>
</cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    let join = |w: &str| perms(g, w, false).join_handling;
    let state = |w: &str| perms(g, w, false).allow_conference_state;
    let anon = |w: &str| perms(g, w, false).allow_anonymity;
    assert!(join("sip:alice@example.com"));
    assert!(join("sip:someone@EXAMPLE.com"));
    assert!(!join("sip:eve@example.com"));
    assert!(!join("sip:alice@sub.example.com"));
    assert!(!join("tel:+15551234567")); // no domain
    assert!(state("sip:anyone@anywhere.example"));
    assert!(state("tel:+15551234567"));
    assert!(!state("sip:mallory@evil.example"));
    assert!(!state("sip:mallory@EVIL.example"));
    assert!(!state("sip:zed@example.org"));
    assert!(state("sip:zed2@example.org"));
    assert!(anon("sip:frank@elsewhere.example"));
    assert!(anon("sip:frank@ELSEWHERE.example")); // host case ignored (§19.1.4)
    assert!(!anon("sip:Frank@elsewhere.example")); // user part is case-sensitive
    assert!(!anon("sips:frank@elsewhere.example"));
}

#[test]
fn conditions_are_anded_and_empty_conditions_match() {
    let xml = doc_with_rules(
        r#"<cp:rule id="both">
  <cp:conditions>
    <is-list-member/>
    <cp:identity><cp:one id="sip:alice@example.com"/></cp:identity>
  </cp:conditions>
  <cp:actions><allow-anonymity>true</allow-anonymity></cp:actions>
</cp:rule>
<cp:rule id="empty"><cp:conditions/><cp:actions><allow-conference-state>1</allow-conference-state></cp:actions></cp:rule>
<cp:rule id="absent"><cp:actions><is-key-participant>1</is-key-participant></cp:actions></cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    let a = perms(g, "sip:alice@example.com", false);
    assert!(a.allow_anonymity && a.allow_conference_state && a.is_key_participant);
    let b = perms(g, "sip:bob@example.com", false);
    assert!(!b.allow_anonymity && b.allow_conference_state && b.is_key_participant);
    let x = perms(g, "sip:x@y.example", false);
    assert!(!x.allow_anonymity && x.allow_conference_state && x.is_key_participant);
}

#[test]
fn other_identity() {
    let xml = doc_with_rules(
        r#"<cp:rule id="vip">
  <cp:conditions>
    <cp:identity><cp:one id="sip:alice@example.com"/><cp:many domain="partner.example"/></cp:identity>
  </cp:conditions>
  <cp:actions><allow-anonymity>true</allow-anonymity></cp:actions>
</cp:rule>
<cp:rule id="members">
  <cp:conditions><is-list-member/></cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions>
</cp:rule>
<cp:rule id="rest">
  <cp:conditions><ocp:other-identity/></cp:conditions>
  <cp:actions><allow-conference-state>true</allow-conference-state></cp:actions>
</cp:rule>
<cp:rule id="self">
  <cp:conditions>
    <ocp:other-identity/>
    <cp:identity><cp:one id="sip:bob@example.com"/></cp:identity>
  </cp:conditions>
  <cp:actions><is-key-participant>true</is-key-participant></cp:actions>
</cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    // Alice is matched by the identity of rule "vip": not an "other" identity.
    let alice = perms(g, "sip:alice@example.com", false);
    assert!(alice.allow_anonymity && alice.join_handling && !alice.allow_conference_state);
    // Bob is a member, but is-list-member is not an identity condition: Bob is "other" for rule
    // "rest". Bob is matched only by the identity of rule "self" itself, so "self" matches, but
    // for rule "rest" Bob IS matched by another rule's identity ("self").
    let bob = perms(g, "sip:bob@example.com", false);
    assert!(bob.join_handling && bob.is_key_participant);
    assert!(!bob.allow_conference_state);
    // Someone of partner.example: matched by "vip".
    assert!(!perms(g, "sip:p@partner.example", false).allow_conference_state);
    // Carol is matched by no identity at all: other.
    let carol = perms(g, "sip:carol@example.com", false);
    assert!(carol.allow_conference_state && !carol.join_handling && !carol.is_key_participant);
}

#[test]
fn other_identity_and_many_without_domain() {
    // A <many/> in another rule matches everybody, so nobody is "other".
    let xml = doc_with_rules(
        r#"<cp:rule id="all"><cp:conditions><cp:identity><cp:many/></cp:identity></cp:conditions></cp:rule>
<cp:rule id="rest"><cp:conditions><ocp:other-identity/></cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions></cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    assert!(!perms(g, "sip:x@y.example", false).join_handling);
    assert!(!perms(g, "tel:+1555", false).join_handling);
}

#[test]
fn anonymous_request_condition() {
    let xml = doc_with_rules(
        r#"<cp:rule id="named"><cp:conditions><is-list-member/></cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions></cp:rule>
<cp:rule id="anon"><cp:conditions><is-list-member/><ocp:anonymous-request/></cp:conditions>
  <cp:actions><allow-anonymity>true</allow-anonymity></cp:actions></cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    assert!(perms(g, "sip:alice@example.com", true).allow_anonymity);
    assert!(!perms(g, "sip:alice@example.com", false).allow_anonymity);
    assert!(!perms(g, "sip:carol@example.com", true).allow_anonymity);
}

#[test]
fn unsupported_and_unknown_conditions_never_match() {
    for cond in [
        "<cp:validity><cp:from>2020-01-01T00:00:00Z</cp:from><cp:until>2999-01-01T00:00:00Z</cp:until></cp:validity>",
        "<cp:sphere value=\"work\"/>",
        "<ocp:external-list><ocp:entry anc=\"http://xcap.example/list\"/></ocp:external-list>",
        "<x:whatever xmlns:x=\"urn:example:unknown\"/>",
        "<oxe:some-condition/>",
    ] {
        let xml = doc_with_rules(&format!(
            "<cp:rule id=\"r\"><cp:conditions><is-list-member/>{cond}</cp:conditions>
               <cp:actions><join-handling>true</join-handling></cp:actions></cp:rule>"
        ));
        let set = load_ok(&xml);
        assert!(
            !perms(only_group(&set), "sip:alice@example.com", false).join_handling,
            "{cond}"
        );
    }
}

#[test]
fn external_list_does_not_hide_other_identity() {
    let xml = doc_with_rules(
        r#"<cp:rule id="ext"><cp:conditions><ocp:external-list><ocp:entry anc="http://x/y"/></ocp:external-list></cp:conditions>
  <cp:actions><allow-anonymity>true</allow-anonymity></cp:actions></cp:rule>
<cp:rule id="rest"><cp:conditions><ocp:other-identity/></cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions></cp:rule>"#,
    );
    let set = load_ok(&xml);
    let p = perms(only_group(&set), "sip:x@y.example", false);
    assert!(p.join_handling && !p.allow_anonymity);
}

#[test]
fn false_never_cancels_true_and_duplicates_or() {
    let xml = doc_with_rules(
        r#"<cp:rule id="deny"><cp:conditions><is-list-member/></cp:conditions>
  <cp:actions><join-handling>false</join-handling><allow-anonymity>false</allow-anonymity></cp:actions></cp:rule>
<cp:rule id="grant"><cp:conditions><cp:identity><cp:one id="sip:alice@example.com"/></cp:identity></cp:conditions>
  <cp:actions><join-handling>true</join-handling><join-handling>false</join-handling></cp:actions></cp:rule>"#,
    );
    let set = load_ok(&xml);
    let g = only_group(&set);
    assert!(perms(g, "sip:alice@example.com", false).join_handling);
    assert!(!perms(g, "sip:bob@example.com", false).join_handling);
}

#[test]
fn empty_ruleset_grants_nothing() {
    let set = load_ok(&doc_with_rules(""));
    let g = only_group(&set);
    assert!(g.has_ruleset());
    assert_eq!(
        perms(g, "sip:alice@example.com", false),
        Permissions::default()
    );
}

#[test]
fn foreign_actions_and_extensions_ignored() {
    let xml = doc_with_rules(
        r#"<cp:rule id="r">
  <cp:conditions><is-list-member/></cp:conditions>
  <cp:actions>
    <join-handling>true</join-handling>
    <oxe:allow-expelling>maybe</oxe:allow-expelling>
    <x:thing xmlns:x="urn:example:x">whatever</x:thing>
  </cp:actions>
  <cp:transformations><x:t xmlns:x="urn:example:x"/></cp:transformations>
</cp:rule>"#,
    );
    let xml = xml.replace(
        "<list>",
        "<oxe:supported-services><oxe:service enabler=\"urn:oma:xml:xdm:im\"/></oxe:supported-services><list>",
    );
    let set = load_ok(&xml);
    assert!(perms(only_group(&set), "sip:alice@example.com", false).join_handling);
}

// ---------------------------------------------------------------------------------------------
// Members and lookup

#[test]
fn tel_members() {
    let set = load_ok(&doc_with_rules(
        r#"<cp:rule id="m"><cp:conditions><is-list-member/></cp:conditions>
  <cp:actions><join-handling>true</join-handling></cp:actions></cp:rule>"#,
    ));
    let g = only_group(&set);
    assert!(g.is_member(&uri("tel:+15551234567")));
    assert!(!g.is_member(&uri("tel:+15551234568")));
    // RFC 3966: visual separators do not matter.
    assert!(g.is_member(&uri("tel:+1-555-123-4567")));
    assert!(g.is_member(&uri("tel:+1.555.(123).4567")));
    assert!(perms(g, "tel:+15551234567", false).join_handling);
    assert!(!perms(g, "tel:+15550000000", false).join_handling);
}

#[test]
fn member_lookup_is_uri_equivalence() {
    let set = load_ok(&doc_with_rules(""));
    let g = only_group(&set);
    assert!(g.is_member(&uri("sip:alice@EXAMPLE.com")));
    assert!(g.is_member(&uri("sip:alice@example.com;foo=bar")));
    assert!(!g.is_member(&uri("sip:Alice@example.com")));
    assert!(!g.is_member(&uri("sips:alice@example.com")));
    assert!(!g.is_member(&uri("sip:alice@example.com:5060")));
    assert!(!g.is_member(&uri("sip:alice@example.com;user=phone")));
}

#[test]
fn group_lookup_by_uri_equivalence() {
    let set = load_ok(BOOKCLUB);
    for hit in [
        "sip:bookclub@im.example.net",
        "sip:bookclub@IM.Example.NET",
        "sip:bookclub@im.example.net;foo=bar",
        "sip:bookclub@im.example.net;lr",
        " sip:bookclub@im.example.net ",
        "SIP:bookclub@im.example.net",
    ] {
        assert!(set.find(hit).is_some(), "{hit}");
    }
    for miss in [
        "sip:Bookclub@im.example.net",
        "sips:bookclub@im.example.net",
        "sip:bookclub@im.example.net:5060",
        "sip:bookclub@im.example.net;transport=tcp", // §19.1.4: transport in only one URI
        "sip:bookclub@im.example.net;user=phone",
        "sip:bookclub@other.example.net",
        "sip:lounge@im.example.net",
        "not a uri",
        "",
    ] {
        assert!(set.find(miss).is_none(), "{miss}");
    }
    assert!(GroupSet::empty()
        .find("sip:bookclub@im.example.net")
        .is_none());
    assert!(GroupSet::empty().is_empty());
}

#[test]
fn group_uri_with_params_matches_per_19_1_4() {
    let xml = r#"<group xmlns="urn:oma:xml:poc:list-service">
  <list-service uri="sip:chat@conf.example;transport=tcp"/>
</group>"#;
    let set = load_ok(xml);
    assert!(set.find("sip:chat@conf.example;transport=TCP").is_some());
    assert!(set.find("sip:chat@conf.example").is_none());
    assert!(set.find("sip:chat@conf.example;transport=udp").is_none());
}

// ---------------------------------------------------------------------------------------------
// Refused documents

#[test]
fn dtd_refused() {
    let xml = r#"<?xml version="1.0"?>
<!DOCTYPE group [ <!ENTITY x "y"> ]>
<group xmlns="urn:oma:xml:poc:list-service"><list-service uri="sip:g@example.net"/></group>"#;
    let e = load_err(xml);
    assert!(e.reason.contains("DTD"), "{}", e.reason);
    assert_eq!((e.line, e.column), (Some(2), Some(1)));
    let e = load_err(
        "<!DOCTYPE group><group xmlns=\"urn:oma:xml:poc:list-service\"><list-service uri=\"sip:g@x\"/></group>",
    );
    assert!(e.reason.contains("DTD"), "{}", e.reason);
}

#[test]
fn xml_syntax_error_has_position() {
    let xml = "<group xmlns=\"urn:oma:xml:poc:list-service\">\n  <list-service uri=\"sip:g@x\">\n</group>";
    let e = load_err(xml);
    assert!(e.reason.starts_with("XML syntax error"), "{}", e.reason);
    assert_eq!(e.line, Some(3));
    assert!(!e.reason.contains(" at 3:"), "{}", e.reason);
    // Undeclared prefix.
    let e = load_err("<group xmlns=\"urn:oma:xml:poc:list-service\"><x:list-service/></group>");
    assert!(e.reason.starts_with("XML syntax error"), "{}", e.reason);
    assert_eq!(load_err("").line, Some(1));
}

#[test]
fn wrong_root_refused() {
    for xml in [
        r#"<group><list-service uri="sip:g@x"/></group>"#,
        r#"<group xmlns="urn:oma:xml:poc:list-servicex"><list-service uri="sip:g@x"/></group>"#,
        r#"<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists"/>"#,
        r#"<list-service xmlns="urn:oma:xml:poc:list-service" uri="sip:g@x"/>"#,
    ] {
        let e = load_err(xml);
        assert!(
            e.reason
                .starts_with("root element must be {urn:oma:xml:poc:list-service}group"),
            "{}",
            e.reason
        );
        assert_eq!((e.line, e.column), (Some(1), Some(1)));
    }
    let e = load_err(r#"<group xmlns="urn:oma:xml:poc:list-service"/>"#);
    assert!(
        e.reason.contains("at least one <list-service>"),
        "{}",
        e.reason
    );
}

#[test]
fn missing_and_invalid_uris_refused() {
    let xml = "<group xmlns=\"urn:oma:xml:poc:list-service\">\n  <list-service>\n  </list-service>\n</group>";
    let e = load_err(xml);
    assert_eq!(e.reason, "missing required attribute uri on <list-service>");
    assert_eq!((e.line, e.column), (Some(2), Some(3)));
    assert_eq!(
        e.to_string(),
        "test.xml:2:3: missing required attribute uri on <list-service>"
    );

    let e = load_err(&doc("<list><entry uri=\"not a uri\"/></list>"));
    assert!(
        e.reason.starts_with("invalid URI in <entry uri>"),
        "{}",
        e.reason
    );
    let e = load_err(&doc("<list><rl:entry/></list>"));
    assert_eq!(e.reason, "missing required attribute uri on <rl:entry>");
    let e = load_err(
        r#"<group xmlns="urn:oma:xml:poc:list-service"><list-service uri="bogus"/></group>"#,
    );
    assert!(
        e.reason.starts_with("invalid URI in <list-service uri>"),
        "{}",
        e.reason
    );
    let e = load_err(&doc_with_rules(
        r#"<cp:rule id="r"><cp:conditions><cp:identity><cp:one/></cp:identity></cp:conditions></cp:rule>"#,
    ));
    assert_eq!(e.reason, "missing required attribute id on <cp:one>");
    let e = load_err(&doc_with_rules(
        r#"<cp:rule id="r"><cp:conditions><cp:identity><cp:one id="nope"/></cp:identity></cp:conditions></cp:rule>"#,
    ));
    assert!(
        e.reason.starts_with("invalid URI in <cp:one id>"),
        "{}",
        e.reason
    );
}

#[test]
fn structural_errors_refused() {
    let cases: &[(&str, &str)] = &[
        (
            r#"<cp:rule><cp:actions/></cp:rule>"#,
            "missing required attribute id on <cp:rule>",
        ),
        (
            r#"<cp:rule id="a"/><cp:rule id="a"/>"#,
            "duplicate rule id 'a'",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><cp:identity/></cp:conditions></cp:rule>"#,
            "<cp:identity> must contain at least one",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><cp:identity><cp:many><cp:except/></cp:many></cp:identity></cp:conditions></cp:rule>"#,
            "<cp:except> needs an id or a domain",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><cp:idenity/></cp:conditions></cp:rule>"#,
            "unknown condition <cp:idenity>",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><is-member/></cp:conditions></cp:rule>"#,
            "unknown condition <is-member>",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><ocp:other/></cp:conditions></cp:rule>"#,
            "unknown condition <ocp:other>",
        ),
        (
            r#"<cp:rule id="a"><cp:actions><allow-anonymous>true</allow-anonymous></cp:actions></cp:rule>"#,
            "unknown action <allow-anonymous>",
        ),
        (
            r#"<cp:rule id="a"><cp:actions><allow-private-message>true</allow-private-message></cp:actions></cp:rule>"#,
            "belongs to the namespace urn:oma:xml:xdm:extensions",
        ),
        (
            r#"<cp:rule id="a"><cp:actions><oxe:allow-anonymity>true</oxe:allow-anonymity></cp:actions></cp:rule>"#,
            "allow-anonymity belongs to the namespace urn:oma:xml:poc:list-service",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions/><cp:conditions/></cp:rule>"#,
            "duplicate <cp:conditions> in <cp:rule>",
        ),
        (
            r#"<cp:rule id="a"><cp:condition/></cp:rule>"#,
            "unexpected element <cp:condition> in <cp:rule>",
        ),
        (
            r#"<cp:rule id="a"><cp:conditions><cp:identity><cp:many domain=" "/></cp:identity></cp:conditions></cp:rule>"#,
            "empty domain attribute on <cp:many>",
        ),
        (
            r#"<cp:rule id="a"><cp:actions><join-handling><x/></join-handling></cp:actions></cp:rule>"#,
            "<join-handling> must contain only text",
        ),
    ];
    for (rules, want) in cases {
        let e = load_err(&doc_with_rules(rules));
        assert!(e.reason.contains(want), "{rules}: {}", e.reason);
        assert!(e.line.is_some() && e.column.is_some());
    }
    let list_service_cases: &[(&str, &str)] = &[
        ("<max-participants>3</max-participants>", "unexpected element <max-participants> in <list-service>"),
        ("<list/><list/>", "duplicate <list> in <list-service>"),
        ("<cp:ruleset/><cp:ruleset/>", "duplicate <cp:ruleset> in <list-service>"),
        ("<cp:rule id=\"x\"/>", "unexpected element <cp:rule> in <list-service>"),
        ("<max-participant-count>1</max-participant-count><max-participant-count>2</max-participant-count>", "duplicate <max-participant-count>"),
        ("<list><rl:entries/></list>", "unexpected element <rl:entries> in <list>"),
    ];
    for (body, want) in list_service_cases {
        let e = load_err(&doc(body));
        assert!(e.reason.contains(want), "{body}: {}", e.reason);
    }
    let e = load_err(
        r#"<group xmlns="urn:oma:xml:poc:list-service"><list-service uri="sip:a@x"/><lists/></group>"#,
    );
    assert!(
        e.reason.contains("unexpected element <lists> in <group>"),
        "{}",
        e.reason
    );
}

#[test]
fn deeply_nested_lists_refused_not_overflowing() {
    let depth = 200;
    let mut body = String::new();
    body.push_str("<list>");
    for _ in 0..depth {
        body.push_str("<rl:list>");
    }
    body.push_str("<rl:entry uri=\"sip:a@b\"/>");
    for _ in 0..depth {
        body.push_str("</rl:list>");
    }
    body.push_str("</list>");
    let e = load_err(&doc(&body));
    assert!(e.reason.contains("nested"), "{}", e.reason);
}

#[test]
fn duplicate_group_uris_refused() {
    let xml = r#"<group xmlns="urn:oma:xml:poc:list-service">
  <list-service uri="sip:dup@example.net"/>
  <list-service uri="sip:dup@EXAMPLE.net;foo=1"/>
</group>"#;
    let e = load_err(xml);
    assert!(
        e.reason.starts_with("duplicate list-service URI"),
        "{}",
        e.reason
    );
    assert_eq!((e.line, e.column), (Some(3), Some(3)));
    assert!(e.reason.contains("test.xml:2:3"), "{}", e.reason);

    let docs = vec![
        ("a.xml".to_string(), BOOKCLUB.to_string()),
        (
            "b.xml".to_string(),
            r#"<group xmlns="urn:oma:xml:poc:list-service"><list-service uri="sip:bookclub@IM.EXAMPLE.NET"/></group>"#
                .to_string(),
        ),
    ];
    let e = GroupSet::from_documents(&docs).unwrap_err();
    assert_eq!(e.file, "b.xml");
    assert!(e.reason.contains("a.xml"), "{}", e.reason);
    assert!(e.to_string().starts_with("b.xml:1:"), "{e}");

    // Different URIs are fine, even when similar.
    let docs = vec![
        ("a.xml".to_string(), BOOKCLUB.to_string()),
        (
            "b.xml".to_string(),
            r#"<group xmlns="urn:oma:xml:poc:list-service"><list-service uri="sip:Bookclub@im.example.net"/></group>"#
                .to_string(),
        ),
    ];
    assert_eq!(GroupSet::from_documents(&docs).unwrap().len(), 2);
}

#[test]
fn load_dir_is_all_or_nothing() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("a-good.xml"), BOOKCLUB).unwrap();
    std::fs::write(
        dir.join("b-bad.xml"),
        "<group xmlns=\"urn:oma:xml:poc:list-service\">\n <list-service uri=\"sip:x@y\">\n  <cp:ruleset xmlns:cp=\"urn:ietf:params:xml:ns:common-policy\"><cp:rule id=\"r\"><cp:actions>\n   <join-handling>allow</join-handling>\n  </cp:actions></cp:rule></cp:ruleset>\n </list-service>\n</group>\n",
    )
    .unwrap();
    std::fs::write(dir.join("c-good.xml"), QUIET).unwrap();
    let e = GroupSet::load_dir(&dir).unwrap_err();
    assert!(e.file.ends_with("b-bad.xml"), "{e}");
    assert_eq!((e.line, e.column), (Some(4), Some(4)));
    let shown = e.to_string();
    assert!(
        shown.ends_with("b-bad.xml:4:4: invalid xs:boolean 'allow' in <join-handling> (expected true, false, 1 or 0)"),
        "{shown}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_dir_ignores_hidden_and_other_files() {
    let dir = temp_dir("ignore");
    std::fs::write(dir.join("b.xml"), QUIET).unwrap();
    std::fs::write(dir.join("a.xml"), NO_RULESET).unwrap();
    std::fs::write(dir.join(".hidden.xml"), "garbage").unwrap();
    std::fs::write(dir.join("notes.txt"), "garbage").unwrap();
    std::fs::write(dir.join("c.xml~"), "garbage").unwrap();
    std::fs::write(dir.join("d.xml.bak"), "garbage").unwrap();
    std::fs::create_dir(dir.join("sub.xml")).unwrap();
    let (set, docs) = GroupSet::load_dir(&dir).unwrap();
    assert_eq!(docs.len(), 2);
    assert!(docs[0].0.ends_with("a.xml") && docs[1].0.ends_with("b.xml"));
    assert_eq!(docs[0].1, NO_RULESET);
    let uris: Vec<_> = set.iter().map(|g| g.uri.clone()).collect();
    assert_eq!(
        uris,
        [
            "sip:members-only@im.example.net",
            "sip:quiet@im.example.net"
        ]
    );
    assert!(set.iter().next().unwrap().source_file().ends_with("a.xml"));
    std::fs::remove_dir_all(&dir).unwrap();

    // An empty directory is an empty set; a missing one is an error.
    let dir = temp_dir("empty");
    let (set, docs) = GroupSet::load_dir(&dir).unwrap();
    assert!(set.is_empty() && docs.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
    let e = GroupSet::load_dir(&dir).unwrap_err();
    assert!(e.line.is_none() && e.reason.contains("cannot read group directory"));
}

#[test]
fn load_dir_refuses_non_utf8() {
    let dir = temp_dir("utf8");
    std::fs::write(dir.join("a.xml"), b"<group>\n  \xff</group>").unwrap();
    let e = GroupSet::load_dir(&dir).unwrap_err();
    assert!(e.reason.contains("UTF-8"));
    assert_eq!((e.line, e.column), (Some(2), Some(3)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_error_display() {
    let mut e = LoadError {
        file: "f.xml".into(),
        line: Some(3),
        column: Some(7),
        reason: "bad".into(),
    };
    assert_eq!(e.to_string(), "f.xml:3:7: bad");
    e.column = None;
    assert_eq!(e.to_string(), "f.xml:3: bad");
    e.line = None;
    assert_eq!(e.to_string(), "f.xml: bad");
}

#[test]
fn group_set_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupSet>();
    assert_send_sync::<LoadError>();
}

// ---------------------------------------------------------------------------------------------
// Property tests

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn from_documents_never_panics(s in any::<String>()) {
        let _ = GroupSet::from_documents(&[("p.xml".to_string(), s)]);
    }

    #[test]
    fn from_documents_never_panics_on_mangled_samples(
        which in 0usize..5,
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..20, "[<>/=\"a-z: \n&;#x0-9]{0,12}"), 1..4),
    ) {
        let mut text = [BOOKCLUB, OPEN_LOUNGE, SMALL_ROOM, NO_RULESET, QUIET][which].to_string();
        for (at, len, insert) in cuts {
            let mut start = at.index(text.len().max(1)).min(text.len());
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end, &insert);
        }
        if let Ok(set) = GroupSet::from_documents(&[("m.xml".to_string(), text)]) {
            for g in set.iter() {
                let _ = g.permissions(&uri("sip:alice@example.com"), true);
                let _ = set.find(&g.uri);
            }
        }
    }
}

const VOCAB_CONDITIONS: &[&str] = &[
    "<is-list-member/>",
    r#"<cp:identity><cp:one id="sip:alice@example.com"/></cp:identity>"#,
    r#"<cp:identity><cp:one id="sip:carol@partner.example.org"/></cp:identity>"#,
    r#"<cp:identity><cp:many domain="example.com"/></cp:identity>"#,
    r#"<cp:identity><cp:many domain="example.com"><cp:except id="sip:bob@example.com"/></cp:many></cp:identity>"#,
    r#"<cp:identity><cp:many><cp:except domain="other.example"/></cp:many></cp:identity>"#,
    r#"<cp:identity><cp:many/></cp:identity>"#,
    "<ocp:other-identity/>",
    "<ocp:anonymous-request/>",
    "<cp:validity><cp:from>2000-01-01T00:00:00Z</cp:from><cp:until>2100-01-01T00:00:00Z</cp:until></cp:validity>",
    r#"<x:cond xmlns:x="urn:example:x"/>"#,
];

const VOCAB_ACTIONS: &[&str] = &[
    "join-handling",
    "allow-anonymity",
    "allow-conference-state",
    "oxe:allow-private-message",
    "allow-initiate-conference",
    "allow-invite-users-dynamically",
    "is-key-participant",
];

const IDENTITIES: &[&str] = &[
    "sip:alice@example.com",
    "sip:bob@example.com",
    "sip:carol@partner.example.org",
    "sip:dave@other.example",
    "sip:erin@example.com",
    "tel:+15551234567",
];

#[derive(Debug, Clone)]
struct GenRule {
    /// None = no <cp:conditions> element.
    conditions: Option<Vec<usize>>,
    /// For each action: absent, false or true.
    actions: Vec<Option<bool>>,
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        prop::option::weighted(0.85, prop::collection::vec(0..VOCAB_CONDITIONS.len(), 0..3)),
        prop::collection::vec(prop::option::of(any::<bool>()), VOCAB_ACTIONS.len()),
    )
        .prop_map(|(conditions, actions)| GenRule {
            conditions,
            actions,
        })
}

fn render(rules: &[(usize, GenRule)]) -> String {
    let mut out = String::new();
    for (id, rule) in rules {
        out.push_str(&format!("<cp:rule id=\"r{id}\">"));
        if let Some(conds) = &rule.conditions {
            out.push_str("<cp:conditions>");
            for &c in conds {
                out.push_str(VOCAB_CONDITIONS[c]);
            }
            out.push_str("</cp:conditions>");
        }
        out.push_str("<cp:actions>");
        for (name, value) in VOCAB_ACTIONS.iter().zip(&rule.actions) {
            if let Some(v) = value {
                out.push_str(&format!("<{name}>{v}</{name}>"));
            }
        }
        out.push_str("</cp:actions></cp:rule>\n");
    }
    doc_with_rules(&out)
}

fn evaluate_all(xml: &str) -> Vec<Permissions> {
    let set = load_ok(xml);
    let g = only_group(&set);
    let mut out = Vec::new();
    for who in IDENTITIES {
        for anon in [false, true] {
            out.push(perms(g, who, anon));
        }
    }
    out
}

type NumberedRules = Vec<(usize, GenRule)>;

fn rules_and_shuffle() -> impl Strategy<Value = (NumberedRules, NumberedRules)> {
    prop::collection::vec(gen_rule(), 0..7).prop_flat_map(|rules| {
        let numbered: Vec<(usize, GenRule)> = rules.into_iter().enumerate().collect();
        (Just(numbered.clone()), Just(numbered).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn permissions_do_not_depend_on_rule_order((rules, shuffled) in rules_and_shuffle()) {
        prop_assert_eq!(evaluate_all(&render(&rules)), evaluate_all(&render(&shuffled)));
    }

    #[test]
    fn a_rule_of_false_actions_never_removes_a_permission(
        (rules, _) in rules_and_shuffle(),
        conds in prop::collection::vec(prop::sample::select(vec![0usize, 7, 8, 9, 10]), 0..3),
        at in any::<prop::sample::Index>(),
    ) {
        let before = evaluate_all(&render(&rules));
        let mut more = rules.clone();
        let deny = GenRule { conditions: Some(conds), actions: vec![Some(false); VOCAB_ACTIONS.len()] };
        more.insert(at.index(more.len() + 1), (1000, deny));
        prop_assert_eq!(before, evaluate_all(&render(&more)));
    }
}
