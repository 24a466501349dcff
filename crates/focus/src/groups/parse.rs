//! XML → [`Group`]s. Validation errors carry the file, line and column of the offending element
//! or attribute.

use roxmltree::{Document, Node, ParsingOptions};

use super::policy::{Condition, Identity, Many, Permissions, Policy, Rule};
use super::sip::{parse_uri, Uri};
use super::{
    Group, LoadError, Origin, UriSet, NS_COMMON_POLICY as CP, NS_LIST_SERVICE as LS,
    NS_OMA_COMMON_POLICY as OCP, NS_OMA_EXTENSIONS as OXE, NS_RESOURCE_LISTS as RL,
};

/// Nested `<list>`s deeper than this are refused (protects the recursion).
const MAX_LIST_DEPTH: usize = 32;

/// 1-based line and column (in characters) just after `prefix`.
pub(super) fn line_col(prefix: &[u8]) -> (u32, u32) {
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = String::from_utf8_lossy(&prefix[line_start..])
        .chars()
        .count()
        + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// XML whitespace (S production): space, tab, CR, LF.
fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim_xml_ws(s: &str) -> &str {
    s.trim_matches(is_xml_ws)
}

/// A value shown in an error: at most 60 characters, control characters escaped.
fn shown(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        if i == 60 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

fn in_ns(node: Node<'_, '_>, ns: &str) -> bool {
    node.tag_name().namespace() == Some(ns)
}

/// `<name>`, `<cp:name>`, ... with the conventional prefixes, whatever the document's prefixes.
fn label(node: Node<'_, '_>) -> String {
    let name = node.tag_name().name();
    match node.tag_name().namespace() {
        Some(LS) => format!("<{name}>"),
        Some(CP) => format!("<cp:{name}>"),
        Some(OCP) => format!("<ocp:{name}>"),
        Some(RL) => format!("<rl:{name}>"),
        Some(OXE) => format!("<oxe:{name}>"),
        Some(ns) => format!("<{{{ns}}}{name}>"),
        None => format!("<{name}> (no namespace)"),
    }
}

fn element_children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|n| n.is_element())
}

/// The actions of the list-service namespace, with their setters.
type ActionSetter = fn(&mut Permissions, bool);

const LS_ACTIONS: &[(&str, ActionSetter)] = &[
    ("allow-conference-state", |p, v| {
        p.allow_conference_state = v
    }),
    ("allow-invite-users-dynamically", |p, v| {
        p.allow_invite_users_dynamically = v
    }),
    ("join-handling", |p, v| p.join_handling = v),
    ("allow-initiate-conference", |p, v| {
        p.allow_initiate_conference = v
    }),
    ("allow-anonymity", |p, v| p.allow_anonymity = v),
    ("is-key-participant", |p, v| p.is_key_participant = v),
];

struct Parser<'a, 'i> {
    file: &'a str,
    doc: &'a Document<'i>,
}

type R<T> = Result<T, LoadError>;

impl<'a, 'i> Parser<'a, 'i> {
    fn err_at(&self, pos: usize, reason: impl Into<String>) -> LoadError {
        let tp = self.doc.text_pos_at(pos);
        LoadError {
            file: self.file.to_string(),
            line: Some(tp.row),
            column: Some(tp.col),
            reason: reason.into(),
        }
    }

    fn err(&self, node: Node<'_, '_>, reason: impl Into<String>) -> LoadError {
        self.err_at(node.range().start, reason)
    }

    fn origin(&self, node: Node<'_, '_>) -> Origin {
        let tp = self.doc.text_pos_at(node.range().start);
        Origin {
            file: self.file.to_string(),
            line: tp.row,
            column: tp.col,
        }
    }

    /// A required attribute (no namespace), trimmed of XML whitespace.
    fn required_attr(&self, node: Node<'a, 'i>, name: &str) -> R<(&'a str, usize)> {
        match node.attribute_node(name) {
            Some(a) => Ok((trim_xml_ws(a.value()), a.range().start)),
            None => Err(self.err(
                node,
                format!(
                    "missing required attribute {name} on {}",
                    label(node).trim_end_matches(" (no namespace)")
                ),
            )),
        }
    }

    /// Parses a URI attribute; `what` names it in errors, e.g. `<entry uri>`.
    fn uri_attr(&self, node: Node<'a, 'i>, name: &str, what: &str) -> R<(String, Uri)> {
        let (value, pos) = self.required_attr(node, name)?;
        match parse_uri(value) {
            Ok(uri) => Ok((value.to_string(), uri)),
            Err(e) => Err(self.err_at(
                pos,
                format!("invalid URI in {what}: '{}' ({e})", shown(value)),
            )),
        }
    }

    /// The text content of an element that must hold text only (comments allowed).
    fn text_only(&self, node: Node<'a, 'i>) -> R<String> {
        let mut text = String::new();
        for child in node.children() {
            if child.is_element() {
                return Err(self.err(
                    child,
                    format!(
                        "{} must contain only text, found element {}",
                        label(node),
                        label(child)
                    ),
                ));
            }
            if let Some(t) = child.text() {
                if child.is_text() {
                    text.push_str(t);
                }
            }
        }
        Ok(text)
    }

    fn boolean(&self, node: Node<'a, 'i>) -> R<bool> {
        let text = self.text_only(node)?;
        match trim_xml_ws(&text) {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(self.err(
                node,
                format!(
                    "invalid xs:boolean '{}' in {} (expected true, false, 1 or 0)",
                    shown(other),
                    label(node)
                ),
            )),
        }
    }

    fn positive_integer(&self, node: Node<'a, 'i>) -> R<u32> {
        let text = self.text_only(node)?;
        let v = trim_xml_ws(&text);
        let digits = v.strip_prefix('+').unwrap_or(v);
        let bad = || {
            self.err(
                node,
                format!(
                    "max-participant-count must be a positive integer (got '{}')",
                    shown(v)
                ),
            )
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return Err(bad());
        }
        match significant.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => Err(self.err(
                node,
                format!(
                    "max-participant-count '{}' is too large (at most {})",
                    shown(v),
                    u32::MAX
                ),
            )),
        }
    }

    fn unexpected(&self, node: Node<'_, '_>, parent: Node<'_, '_>) -> LoadError {
        self.err(
            node,
            format!("unexpected element {} in {}", label(node), label(parent)),
        )
    }

    fn duplicate(&self, node: Node<'_, '_>, parent: Node<'_, '_>) -> LoadError {
        self.err(
            node,
            format!("duplicate {} in {}", label(node), label(parent)),
        )
    }

    fn group(&self) -> R<Vec<Group>> {
        let root = self.doc.root_element();
        if !is(root, LS, "group") {
            return Err(self.err(
                root,
                format!("root element must be {{{LS}}}group (found {})", label(root)),
            ));
        }
        let mut groups = Vec::new();
        for child in element_children(root) {
            if is(child, LS, "list-service") {
                groups.push(self.list_service(child)?);
            } else if in_ns(child, LS) {
                return Err(self.unexpected(child, root));
            }
            // any##other: ignored
        }
        if groups.is_empty() {
            return Err(self.err(root, "<group> must contain at least one <list-service>"));
        }
        Ok(groups)
    }

    fn list_service(&self, node: Node<'a, 'i>) -> R<Group> {
        let (uri, parsed_uri) = self.uri_attr(node, "uri", "<list-service uri>")?;
        let mut display_name: Option<Option<String>> = None;
        let mut list_seen = false;
        let mut members = UriSet::default();
        let mut invite_members: Option<bool> = None;
        let mut max_participants: Option<u32> = None;
        let mut policy: Option<Policy> = None;
        for child in element_children(node) {
            if is(child, LS, "display-name") {
                // Several display-names (e.g. one per xml:lang): the first one is used.
                if display_name.is_none() {
                    let text = self.text_only(child)?;
                    let t = trim_xml_ws(&text);
                    display_name = Some((!t.is_empty()).then(|| t.to_string()));
                }
            } else if is(child, LS, "list") || is(child, RL, "list") {
                if list_seen {
                    return Err(self.duplicate(child, node));
                }
                list_seen = true;
                self.list(child, &mut members, 0)?;
            } else if is(child, LS, "invite-members") {
                if invite_members.is_some() {
                    return Err(self.duplicate(child, node));
                }
                invite_members = Some(self.boolean(child)?);
            } else if is(child, LS, "max-participant-count") {
                if max_participants.is_some() {
                    return Err(self.duplicate(child, node));
                }
                max_participants = Some(self.positive_integer(child)?);
            } else if is(child, CP, "ruleset") {
                if policy.is_some() {
                    return Err(self.duplicate(child, node));
                }
                policy = Some(self.ruleset(child)?);
            } else if in_ns(child, LS) || in_ns(child, CP) {
                return Err(self.unexpected(child, node));
            }
            // any##other (e.g. oxe:supported-services, oxe:subject): ignored
        }
        Ok(Group {
            uri,
            display_name: display_name.flatten(),
            max_participants,
            parsed_uri,
            invite_members: invite_members.unwrap_or(false),
            members,
            policy: policy.unwrap_or(Policy::NoRuleset),
            origin: self.origin(node),
        })
    }

    fn list(&self, node: Node<'a, 'i>, members: &mut UriSet, depth: usize) -> R<()> {
        if depth >= MAX_LIST_DEPTH {
            return Err(self.err(
                node,
                format!("<list> nested more than {MAX_LIST_DEPTH} levels deep"),
            ));
        }
        for child in element_children(node) {
            let local = child.tag_name().name();
            let known_ns = in_ns(child, LS) || in_ns(child, RL);
            if !known_ns {
                continue; // any##other
            }
            match local {
                "entry" => {
                    let (_, uri) = self.uri_attr(child, "uri", "<entry uri>")?;
                    // Children of <entry> (display-name, extensions) are not needed.
                    members.insert(uri);
                }
                "list" => self.list(child, members, depth + 1)?,
                // References to other documents: not resolved, add no members.
                "entry-ref" | "external" => {}
                "display-name" => {}
                _ => return Err(self.unexpected(child, node)),
            }
        }
        Ok(())
    }

    fn ruleset(&self, node: Node<'a, 'i>) -> R<Policy> {
        let mut rules: Vec<Rule> = Vec::new();
        for child in element_children(node) {
            if is(child, CP, "rule") {
                let rule = self.rule(child)?;
                if rules.iter().any(|r| r.id == rule.id) {
                    return Err(self.err(
                        child,
                        format!("duplicate rule id '{}' in <cp:ruleset>", shown(&rule.id)),
                    ));
                }
                rules.push(rule);
            } else if in_ns(child, CP) || in_ns(child, LS) || in_ns(child, OCP) {
                return Err(self.unexpected(child, node));
            }
        }
        Ok(Policy::Rules(rules))
    }

    fn rule(&self, node: Node<'a, 'i>) -> R<Rule> {
        let (id, _) = self.required_attr(node, "id")?;
        let mut conditions: Option<Vec<Condition>> = None;
        let mut actions: Option<Permissions> = None;
        let mut transformations = false;
        for child in element_children(node) {
            if is(child, CP, "conditions") {
                if conditions.is_some() {
                    return Err(self.duplicate(child, node));
                }
                conditions = Some(self.conditions(child)?);
            } else if is(child, CP, "actions") {
                if actions.is_some() {
                    return Err(self.duplicate(child, node));
                }
                actions = Some(self.actions(child)?);
            } else if is(child, CP, "transformations") {
                // Transformations do not apply to group policy: ignored.
                if transformations {
                    return Err(self.duplicate(child, node));
                }
                transformations = true;
            } else if in_ns(child, CP) || in_ns(child, LS) || in_ns(child, OCP) {
                return Err(self.unexpected(child, node));
            }
        }
        Ok(Rule {
            id: id.to_string(),
            conditions: conditions.unwrap_or_default(),
            actions: actions.unwrap_or_default(),
        })
    }

    fn conditions(&self, node: Node<'a, 'i>) -> R<Vec<Condition>> {
        let mut out = Vec::new();
        for child in element_children(node) {
            let local = child.tag_name().name();
            let cond = match child.tag_name().namespace() {
                Some(CP) => match local {
                    "identity" => Condition::Identity(self.identity(child)?),
                    "validity" | "sphere" => {
                        Condition::Never(format!("<cp:{local}> is not supported"))
                    }
                    _ => return Err(self.unknown_condition(child)),
                },
                Some(LS) => match local {
                    "is-list-member" => Condition::IsListMember,
                    _ => return Err(self.unknown_condition(child)),
                },
                Some(OCP) => match local {
                    "other-identity" => Condition::OtherIdentity,
                    "anonymous-request" => Condition::AnonymousRequest,
                    "external-list" => {
                        Condition::Never("<ocp:external-list> is not resolved".to_string())
                    }
                    _ => return Err(self.unknown_condition(child)),
                },
                // RFC 4745 §7: a condition not understood is false.
                _ => Condition::Never(format!("{} is not understood", label(child))),
            };
            out.push(cond);
        }
        Ok(out)
    }

    fn unknown_condition(&self, node: Node<'_, '_>) -> LoadError {
        self.err(
            node,
            format!("unknown condition {} in <cp:conditions>", label(node)),
        )
    }

    fn identity(&self, node: Node<'a, 'i>) -> R<Identity> {
        let mut identity = Identity::default();
        let mut children = 0usize;
        for child in element_children(node) {
            children += 1;
            if is(child, CP, "one") {
                let (_, uri) = self.uri_attr(child, "id", "<cp:one id>")?;
                identity.ones.insert(uri);
            } else if is(child, CP, "many") {
                identity.manys.push(self.many(child)?);
            } else if in_ns(child, CP) || in_ns(child, LS) || in_ns(child, OCP) {
                return Err(self.unexpected(child, node));
            }
            // extension children (other namespaces) never match
        }
        if children == 0 {
            return Err(self.err(
                node,
                "<cp:identity> must contain at least one <cp:one> or <cp:many>",
            ));
        }
        Ok(identity)
    }

    fn domain_attr(&self, node: Node<'a, 'i>) -> R<Option<String>> {
        match node.attribute_node("domain") {
            None => Ok(None),
            Some(a) => {
                let d = trim_xml_ws(a.value());
                if d.is_empty() {
                    Err(self.err_at(
                        a.range().start,
                        format!("empty domain attribute on {}", label(node)),
                    ))
                } else {
                    Ok(Some(d.to_ascii_lowercase()))
                }
            }
        }
    }

    fn many(&self, node: Node<'a, 'i>) -> R<Many> {
        let mut many = Many {
            domain: self.domain_attr(node)?,
            ..Many::default()
        };
        for child in element_children(node) {
            if is(child, CP, "except") {
                let domain = self.domain_attr(child)?;
                let has_id = child.has_attribute("id");
                if domain.is_none() && !has_id {
                    return Err(self.err(child, "<cp:except> needs an id or a domain attribute"));
                }
                if has_id {
                    let (_, uri) = self.uri_attr(child, "id", "<cp:except id>")?;
                    many.except_ids.insert(uri);
                }
                if let Some(d) = domain {
                    many.except_domains.push(d);
                }
            } else if in_ns(child, CP) || in_ns(child, LS) || in_ns(child, OCP) {
                return Err(self.unexpected(child, node));
            }
        }
        Ok(many)
    }

    fn actions(&self, node: Node<'a, 'i>) -> R<Permissions> {
        let mut granted = Permissions::default();
        for child in element_children(node) {
            let local = child.tag_name().name();
            match child.tag_name().namespace() {
                Some(LS) => {
                    let Some((_, set)) = LS_ACTIONS.iter().find(|(n, _)| *n == local) else {
                        let hint = if local == "allow-private-message" {
                            format!(" (allow-private-message belongs to the namespace {OXE})")
                        } else {
                            String::new()
                        };
                        return Err(self.err(
                            child,
                            format!("unknown action {} in <cp:actions>{hint}", label(child)),
                        ));
                    };
                    // A false action grants nothing; duplicates are ORed.
                    if self.boolean(child)? {
                        set(&mut granted, true);
                    }
                }
                Some(OXE) => {
                    if local == "allow-private-message" {
                        if self.boolean(child)? {
                            granted.allow_private_message = true;
                        }
                    } else if LS_ACTIONS.iter().any(|(n, _)| *n == local) {
                        return Err(self.err(
                            child,
                            format!(
                                "{} is not an action: {local} belongs to the namespace {LS}",
                                label(child)
                            ),
                        ));
                    }
                    // other XDM 2 extension actions (allow-expelling, ...): ignored
                }
                Some(CP) => return Err(self.unexpected(child, node)),
                _ => {} // actions of other namespaces: ignored
            }
        }
        Ok(granted)
    }
}

/// `roxmltree`'s message without its trailing ` at line:col` (the position goes in the fields).
fn xml_error_reason(e: &roxmltree::Error) -> String {
    let msg = e.to_string();
    let suffix = format!(" at {}", e.pos());
    msg.strip_suffix(&suffix).unwrap_or(&msg).to_string()
}

/// Parses one group usage document.
pub(super) fn parse_document(file: &str, text: &str) -> Result<Vec<Group>, LoadError> {
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = match Document::parse_with_options(text, options) {
        Ok(doc) => doc,
        Err(roxmltree::Error::DtdDetected) => {
            let (line, column) = match text.find("<!DOCTYPE") {
                Some(i) => line_col(&text.as_bytes()[..i]),
                None => (1, 1),
            };
            return Err(LoadError {
                file: file.to_string(),
                line: Some(line),
                column: Some(column),
                reason: "DTDs (<!DOCTYPE>) are not allowed in group documents".to_string(),
            });
        }
        Err(e) => {
            let pos = e.pos();
            return Err(LoadError {
                file: file.to_string(),
                line: Some(pos.row),
                column: Some(pos.col),
                reason: format!("XML syntax error: {}", xml_error_reason(&e)),
            });
        }
    };
    Parser { file, doc: &doc }.group()
}
