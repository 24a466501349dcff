//! RFC 4745 rule evaluation with the OMA conditions and actions.

use super::sip::{Scheme, Uri};
use super::{Group, UriSet};

/// The combined boolean actions for one identity. `Default` = everything false (nothing allowed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// `<join-handling>`: may join an ongoing session.
    pub join_handling: bool,
    /// `<allow-anonymity>`: may join anonymously (`Privacy: id`).
    pub allow_anonymity: bool,
    /// `<allow-conference-state>`: may subscribe to the conference event package.
    pub allow_conference_state: bool,
    /// `<oxe:allow-private-message>`: may send private messages to one participant.
    pub allow_private_message: bool,
    /// `<allow-initiate-conference>`: may start a session of the group.
    pub allow_initiate_conference: bool,
    /// `<allow-invite-users-dynamically>`: may invite others into the session.
    pub allow_invite_users_dynamically: bool,
    /// `<is-key-participant>`.
    pub is_key_participant: bool,
}

impl Permissions {
    /// What a list member gets when the list-service has no `<cp:ruleset>`: may join
    /// (`join_handling`), start a session (`allow_initiate_conference`) and see the conference state
    /// (`allow_conference_state`); may not be anonymous, send private messages, invite others or be a
    /// key participant. Non-members of such a group get [`Permissions::default`] (nothing).
    pub const fn members_without_ruleset() -> Self {
        Permissions {
            join_handling: true,
            allow_anonymity: false,
            allow_conference_state: true,
            allow_private_message: false,
            allow_initiate_conference: true,
            allow_invite_users_dynamically: false,
            is_key_participant: false,
        }
    }

    /// RFC 4745 §10.2 for booleans: OR, field by field.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions {
            join_handling: self.join_handling || other.join_handling,
            allow_anonymity: self.allow_anonymity || other.allow_anonymity,
            allow_conference_state: self.allow_conference_state || other.allow_conference_state,
            allow_private_message: self.allow_private_message || other.allow_private_message,
            allow_initiate_conference: self.allow_initiate_conference
                || other.allow_initiate_conference,
            allow_invite_users_dynamically: self.allow_invite_users_dynamically
                || other.allow_invite_users_dynamically,
            is_key_participant: self.is_key_participant || other.is_key_participant,
        }
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Permissions) {
        *self = self.union(rhs);
    }
}

/// A list-service's policy.
#[derive(Debug, Clone)]
pub(super) enum Policy {
    /// No `<cp:ruleset>`: members get [`Permissions::members_without_ruleset`].
    NoRuleset,
    /// A `<cp:ruleset>` (possibly empty).
    Rules(Vec<Rule>),
}

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) id: String,
    pub(super) conditions: Vec<Condition>,
    /// The actions that are `true` in this rule (a `false` action contributes nothing).
    pub(super) actions: Permissions,
}

#[derive(Debug, Clone)]
pub(super) enum Condition {
    Identity(Identity),
    IsListMember,
    OtherIdentity,
    AnonymousRequest,
    /// A condition that is always false: `ocp:external-list` (not resolved), `cp:validity`,
    /// `cp:sphere` (not supported), any condition of a namespace we do not understand.
    Never(#[allow(dead_code)] String),
}

/// `<cp:identity>`: OR of its children.
#[derive(Debug, Clone, Default)]
pub(super) struct Identity {
    pub(super) ones: UriSet,
    pub(super) manys: Vec<Many>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Many {
    /// Lower-cased domain; `None` = any authenticated identity.
    pub(super) domain: Option<String>,
    pub(super) except_ids: UriSet,
    /// Lower-cased domains.
    pub(super) except_domains: Vec<String>,
}

/// The identity's domain, lower-cased: the host of a sip:/sips: URI. `tel:` and other schemes have
/// none, so they never match `<many domain>` nor `<except domain>`.
fn domain_of(identity: &Uri) -> Option<String> {
    match identity.scheme {
        Scheme::Sip | Scheme::Sips if !identity.host.is_empty() => Some(identity.host_lower()),
        _ => None,
    }
}

impl Many {
    fn matches(&self, identity: &Uri, domain: Option<&str>) -> bool {
        let included = match &self.domain {
            None => true,
            Some(d) => domain == Some(d.as_str()),
        };
        included
            && !self.except_ids.contains(identity)
            && !self
                .except_domains
                .iter()
                .any(|d| domain == Some(d.as_str()))
    }
}

impl Identity {
    fn matches(&self, identity: &Uri, domain: Option<&str>) -> bool {
        self.ones.contains(identity) || self.manys.iter().any(|m| m.matches(identity, domain))
    }
}

impl Rule {
    /// Whether some `<cp:identity>` condition of this rule matches the identity.
    fn identity_hit(&self, identity: &Uri, domain: Option<&str>) -> bool {
        self.conditions.iter().any(|c| match c {
            Condition::Identity(i) => i.matches(identity, domain),
            _ => false,
        })
    }
}

impl Policy {
    pub(super) fn evaluate(&self, group: &Group, identity: &Uri, anonymous: bool) -> Permissions {
        let rules = match self {
            Policy::NoRuleset => {
                return if group.is_member(identity) {
                    Permissions::members_without_ruleset()
                } else {
                    Permissions::default()
                };
            }
            Policy::Rules(rules) => rules,
        };
        let domain = domain_of(identity);
        let domain = domain.as_deref();
        // For ocp:other-identity: which rules' <cp:identity> conditions match the identity.
        let hits: Vec<bool> = rules
            .iter()
            .map(|r| r.identity_hit(identity, domain))
            .collect();
        let hit_count = hits.iter().filter(|h| **h).count();
        let mut member: Option<bool> = None; // computed on demand
        let mut result = Permissions::default();
        for (i, rule) in rules.iter().enumerate() {
            let matched = rule.conditions.iter().all(|c| match c {
                Condition::Identity(id) => id.matches(identity, domain),
                Condition::IsListMember => *member.get_or_insert_with(|| group.is_member(identity)),
                Condition::OtherIdentity => hit_count - usize::from(hits[i]) == 0,
                Condition::AnonymousRequest => anonymous,
                Condition::Never(_) => false,
            });
            if matched {
                result |= rule.actions;
            }
        }
        result
    }
}
