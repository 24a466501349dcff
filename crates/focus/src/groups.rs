//! OMA XDM group usage documents (`application/vnd.oma.poc.groups+xml`) and their
//! RFC 4745 common-policy rule sets.
//!
//! A [`GroupSet`] is built from a directory of `*.xml` documents ([`GroupSet::load_dir`]) or from
//! documents already read ([`GroupSet::from_documents`], used by the other Kamailio processes after a
//! `chat_alias.reload`). Loading is all-or-nothing: any bad document refuses the whole set with a
//! [`LoadError`] naming the file, line, column and reason, so the caller keeps the previous set.
//!
//! # Document model
//!
//! Elements are matched by namespace URI and local name, never by prefix; any prefix, and any
//! default namespace, may be used.
//!
//! | namespace | elements understood |
//! |---|---|
//! | `urn:oma:xml:poc:list-service` | `group`, `list-service`, `display-name`, `list`, `entry`, `invite-members`, `max-participant-count`, `is-list-member`, the boolean actions `allow-conference-state`, `allow-invite-users-dynamically`, `join-handling`, `allow-initiate-conference`, `allow-anonymity`, `is-key-participant` |
//! | `urn:ietf:params:xml:ns:common-policy` | `ruleset`, `rule`, `conditions`, `identity`, `one`, `many`, `except`, `validity`, `sphere`, `actions`, `transformations` |
//! | `urn:oma:xml:xdm:common-policy` | `other-identity`, `external-list`, `anonymous-request` |
//! | `urn:ietf:params:xml:ns:resource-lists` | `entry`, `list`, `display-name`, `entry-ref`, `external` |
//! | `urn:oma:xml:xdm:extensions` | `allow-private-message` |
//!
//! Structure: `<group>` (root, required) holds one or more `<list-service uri="...">`. A list-service
//! holds, in any order, at most one each of `display-name`, `list`, `invite-members`,
//! `max-participant-count` and `cp:ruleset`, plus any elements of other namespaces (ignored, e.g. the
//! `oxe:` XDM 2 extensions `supported-services`, `subject`, ...). The first `display-name` is used;
//! surrounding whitespace of display names is removed and an empty one counts as absent.
//!
//! Members: every `<entry uri>` of the `<list>` — `<entry>` may be in the list-service or the
//! resource-lists namespace, and entries of nested `<list>`s count too. `<entry-ref>` and
//! `<external>` point at other documents; they are accepted and ignored (they add no members).
//! A `<list>` in the resource-lists namespace is accepted as the list-service's `<list>`.
//!
//! Values: booleans are `xs:boolean` (`true`, `false`, `1`, `0`, with surrounding XML whitespace —
//! space, tab, CR, LF — allowed). Old drafts wrote `<join-handling>allow</join-handling>`: such values
//! are refused with a clear reason. `max-participant-count` is an `xs:positiveInteger` (optional `+`,
//! surrounding whitespace) that must fit in 32 bits. URIs (`list-service uri`, `entry uri`, `one id`,
//! `except id`) must parse as URIs, else the document is refused. DTDs (`<!DOCTYPE>`) are refused.
//!
//! Strictness: an element that the schemas do not allow where it appears refuses the document —
//! an unknown list-service-namespace element anywhere (a typo such as `<allow-anonymous>`, or
//! `<allow-private-message>` without the `oxe` namespace), an unknown common-policy element in a
//! list-service, ruleset, rule, conditions, identity, many or actions, an unknown OMA common-policy
//! element in a ruleset, rule, conditions or identity, and `<oxe:allow-anonymity>` (it belongs to the
//! list-service namespace). So do duplicates of single-valued elements (`list`, `invite-members`,
//! `max-participant-count`, `cp:ruleset`, `cp:conditions`, `cp:actions`), a `<cp:rule>` without `id`,
//! duplicate rule ids within a ruleset, an `<identity>` without children, an `<except>` without
//! `id` or `domain`, an empty `domain`, and `<list>`s nested more than 32 deep. Elements of other
//! namespaces are extension points (`any##other`) and are ignored, except inside `<cp:conditions>`
//! (see below). The order of a list-service's children is not checked.
//!
//! # Rule evaluation (RFC 4745 with the OMA conditions)
//!
//! See [`Group::permissions`]. In short: a rule matches iff all its conditions are true (no
//! `<conditions>` or an empty one = true); each boolean action of the result is the OR over the
//! matching rules, missing = false; a `false` never cancels a `true`; rule order never matters.
//!
//! Conditions:
//! - `cp:identity`: true iff some `<one id>` is URI-equivalent (RFC 3261 §19.1.4) to the
//!   authenticated identity, or some `<many>` matches: `<many domain="d">` when the identity's host
//!   equals `d` ignoring ASCII case (only `sip:`/`sips:` identities have a domain: a `tel:`
//!   identity never matches a `<many domain>` nor an `<except domain>`), `<many/>` for every authenticated identity; in both cases unless an
//!   `<except id>` (URI-equivalent) or `<except domain>` (host, ignoring case) inside that `<many>`
//!   excludes it. Extension children of `<identity>` in other namespaces never match.
//! - `is-list-member`: the identity is URI-equivalent to an entry of the `<list>`.
//! - `ocp:other-identity`: true iff the identity is matched by no `cp:identity` condition of any
//!   *other* rule of the ruleset (whether that other rule as a whole matches does not matter).
//!   `ocp:external-list` conditions of other rules cannot be resolved here and match nobody, so they
//!   do not affect `other-identity`.
//! - `ocp:anonymous-request`: true iff the request asked for anonymity.
//! - `ocp:external-list`: external lists are not resolved: always false (the rule never matches).
//! - `cp:validity`, `cp:sphere`: not supported: always false (the rule never matches).
//! - any condition element of another namespace (including `oxe:`): not understood, so false
//!   (RFC 4745 §7): the rule never matches.
//!
//! Actions: the six list-service booleans and `oxe:allow-private-message`; other actions in other
//! namespaces (e.g. `oxe:allow-expelling`) and `cp:transformations` are ignored.
//!
//! # A list-service without a `cp:ruleset`
//!
//! List members get [`Permissions::members_without_ruleset`]: `join_handling`,
//! `allow_initiate_conference` and `allow_conference_state` true; `allow_anonymity`,
//! `allow_private_message`, `allow_invite_users_dynamically` and `is_key_participant` false.
//! Non-members get nothing (all false). An empty `<cp:ruleset/>` gives everybody nothing.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

mod parse;
mod policy;
#[cfg(test)]
mod tests;

use sip::Uri;

/// URI handling, from the protocol crate.
mod sip {
    pub use chat_alias_proto::sip::{parse_uri, Scheme, Uri};
}

pub use policy::Permissions;

/// Namespace of the OMA PoC/XDM list-service (group usage) schema.
pub const NS_LIST_SERVICE: &str = "urn:oma:xml:poc:list-service";
/// Namespace of RFC 4745 common policy.
pub const NS_COMMON_POLICY: &str = "urn:ietf:params:xml:ns:common-policy";
/// Namespace of the OMA XDM common-policy extensions.
pub const NS_OMA_COMMON_POLICY: &str = "urn:oma:xml:xdm:common-policy";
/// Namespace of RFC 4826 resource lists.
pub const NS_RESOURCE_LISTS: &str = "urn:ietf:params:xml:ns:resource-lists";
/// Namespace of the OMA XDM 2 extensions.
pub const NS_OMA_EXTENSIONS: &str = "urn:oma:xml:xdm:extensions";

/// Why a set of group documents was refused.
///
/// Displays as `<file>:<line>:<col>: <reason>` (or `<file>: <reason>` when no position applies,
/// e.g. an I/O error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The document's name (for [`GroupSet::load_dir`], the path of the file).
    pub file: String,
    /// 1-based line, when the error has a place in the document.
    pub line: Option<u32>,
    /// 1-based column (in characters), when the error has a place in the document.
    pub column: Option<u32>,
    /// What is wrong, e.g. `missing required attribute uri on <list-service>`.
    pub reason: String,
}

impl LoadError {
    fn whole_file(file: &str, reason: impl Into<String>) -> Self {
        LoadError {
            file: file.to_string(),
            line: None,
            column: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for LoadError {}

/// Where something was defined: file, line, column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: String,
    line: u32,
    column: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One `<list-service>`: a pre-defined chat group.
#[derive(Debug, Clone)]
pub struct Group {
    /// The list-service `uri` attribute as written in the document (surrounding whitespace removed).
    pub uri: String,
    /// The list-service `<display-name>`, if any.
    pub display_name: Option<String>,
    /// `<max-participant-count>`, if any.
    pub max_participants: Option<u32>,
    parsed_uri: Uri,
    invite_members: bool,
    members: UriSet,
    policy: policy::Policy,
    origin: Origin,
}

impl Group {
    /// Whether `identity` (the authenticated identity) is URI-equivalent to an entry of the
    /// group's `<list>`.
    pub fn is_member(&self, identity: &Uri) -> bool {
        self.members.contains(identity)
    }

    /// The combined permissions of `identity` (the *authenticated* identity, e.g. from
    /// P-Asserted-Identity, never the anonymous From) for a request that is anonymous or not.
    ///
    /// Evaluates every rule of the group's ruleset (RFC 4745 §10): a rule matches iff all its
    /// conditions are true, and each boolean of the result is the OR of that action over the
    /// matching rules (false when no matching rule has it). The order of the rules does not matter.
    /// Without a ruleset, see [`Permissions::members_without_ruleset`].
    pub fn permissions(&self, identity: &Uri, anonymous_request: bool) -> Permissions {
        self.policy.evaluate(self, identity, anonymous_request)
    }

    /// The list-service URI, parsed.
    pub fn parsed_uri(&self) -> &Uri {
        &self.parsed_uri
    }

    /// The `<invite-members>` value (false when absent). Informational: the focus does not invite.
    pub fn invite_members(&self) -> bool {
        self.invite_members
    }

    /// The member URIs of the `<list>`, in document order.
    pub fn members(&self) -> impl Iterator<Item = &Uri> + '_ {
        self.members.uris.iter()
    }

    /// Whether the list-service has a `<cp:ruleset>`.
    pub fn has_ruleset(&self) -> bool {
        matches!(self.policy, policy::Policy::Rules(_))
    }

    /// The document (file name) this group was defined in.
    pub fn source_file(&self) -> &str {
        &self.origin.file
    }

    /// `file:line:column` of the `<list-service>` element, for log lines.
    pub fn source_location(&self) -> String {
        self.origin.to_string()
    }
}

/// A set of URIs with lookup by URI equivalence: bucketed by [`Uri::key`] (equivalent URIs share a
/// key), then confirmed with [`Uri::equivalent`].
#[derive(Debug, Clone, Default)]
struct UriSet {
    uris: Vec<Uri>,
    by_key: HashMap<String, Vec<usize>>,
}

impl UriSet {
    fn insert(&mut self, uri: Uri) {
        let idx = self.uris.len();
        self.by_key.entry(uri.key()).or_default().push(idx);
        self.uris.push(uri);
    }

    fn find(&self, uri: &Uri) -> Option<usize> {
        self.by_key
            .get(&uri.key())?
            .iter()
            .copied()
            .find(|&i| self.uris[i].equivalent(uri))
    }

    fn contains(&self, uri: &Uri) -> bool {
        self.find(uri).is_some()
    }

    fn len(&self) -> usize {
        self.uris.len()
    }
}

/// The pre-defined groups in force. Immutable once built; lookups do not allocate beyond the URI
/// parse and key.
#[derive(Debug, Clone, Default)]
pub struct GroupSet {
    groups: Vec<Group>,
    /// Group URIs, index-aligned with `groups`.
    index: UriSet,
}

impl GroupSet {
    /// A set without groups (every lookup fails).
    pub fn empty() -> Self {
        GroupSet::default()
    }

    /// Builds a set from documents `(name, content)`, in the order given. All-or-nothing: the first
    /// bad document refuses the whole set. Two list-services with equivalent URIs (in the same or in
    /// different documents) are refused with an error naming both places.
    pub fn from_documents(docs: &[(String, String)]) -> Result<GroupSet, LoadError> {
        let mut set = GroupSet::empty();
        for (file, text) in docs {
            for group in parse::parse_document(file, text)? {
                if let Some(i) = set.index.find(&group.parsed_uri) {
                    let first = &set.groups[i];
                    return Err(LoadError {
                        file: group.origin.file.clone(),
                        line: Some(group.origin.line),
                        column: Some(group.origin.column),
                        reason: format!(
                            "duplicate list-service URI '{}': equivalent to '{}' already defined at {}",
                            group.uri, first.uri, first.origin
                        ),
                    });
                }
                set.index.insert(group.parsed_uri.clone());
                set.groups.push(group);
            }
        }
        Ok(set)
    }

    /// Reads every `*.xml` file of `dir` (sorted by name; hidden files, other names and
    /// sub-directories are ignored) and builds the set. Returns the documents read — `(path, content)`
    /// — so that other processes can build the very same set with [`GroupSet::from_documents`]
    /// without reading the directory again. Any unreadable or bad document fails the whole load.
    pub fn load_dir(dir: &Path) -> Result<(GroupSet, Vec<(String, String)>), LoadError> {
        let dir_name = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            LoadError::whole_file(&dir_name, format!("cannot read group directory: {e}"))
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                LoadError::whole_file(&dir_name, format!("cannot read group directory: {e}"))
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue; // not UTF-8: cannot be "*.xml" as we name it; ignore
            };
            if name.starts_with('.') || !name.ends_with(".xml") || name.len() <= ".xml".len() {
                continue;
            }
            names.push(name.to_string());
        }
        names.sort();
        let mut docs = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let shown = path.display().to_string();
            // Follows symbolic links; sub-directories named *.xml are skipped.
            match std::fs::metadata(&path) {
                Ok(m) if !m.is_file() => continue,
                Ok(_) => {}
                Err(e) => return Err(LoadError::whole_file(&shown, format!("cannot read: {e}"))),
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| LoadError::whole_file(&shown, format!("cannot read: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                let offset = e.utf8_error().valid_up_to();
                let (line, column) = parse::line_col(&e.as_bytes()[..offset]);
                LoadError {
                    file: shown.clone(),
                    line: Some(line),
                    column: Some(column),
                    reason: "document is not valid UTF-8".to_string(),
                }
            })?;
            docs.push((shown, text));
        }
        let set = GroupSet::from_documents(&docs)?;
        Ok((set, docs))
    }

    /// The group whose list-service URI is equivalent (RFC 3261 §19.1.4) to `request_uri`, whatever
    /// the host. Parameters of the Request-URI that §19.1.4 ignores (those not in the group URI,
    /// other than `user`, `ttl`, `method`, `maddr`, `transport`) do not prevent a match. `None` when
    /// the URI does not parse or no group matches.
    pub fn find(&self, request_uri: &str) -> Option<&Group> {
        let uri = sip::parse_uri(request_uri.trim()).ok()?;
        self.find_uri(&uri)
    }

    /// As [`GroupSet::find`], for a URI already parsed.
    pub fn find_uri(&self, uri: &Uri) -> Option<&Group> {
        self.index.find(uri).map(|i| &self.groups[i])
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.groups.len(), self.index.len());
        self.groups.len()
    }

    /// Whether there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Group> {
        self.groups.iter()
    }
}

impl<'a> IntoIterator for &'a GroupSet {
    type Item = &'a Group;
    type IntoIter = std::slice::Iter<'a, Group>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
