//! The module's statistics counters (group `chat_alias`), in registration order.
use chat_alias_focus::join::RefusalKind;
use std::ffi::CStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Counter {
    Joins = 0,
    AnonymousJoins,
    ModifiedAliases,
    Leaves,
    ActiveParticipants,
    RefusedUnknownGroup,
    RefusedNoIdentity,
    RefusedBadRequest,
    RefusedPolicy,
    RefusedAnonymity,
    RefusedConferenceFull,
    RefusedAlreadyJoined,
    RefusedBadOffer,
    RefusedNotAcceptable,
    RefusedPrivacyUnavailable,
    RefusedTableFull,
    RefusedRelayUnavailable,
    RefusedInternal,
    Reloads,
    ReloadFailures,
    RefusedPlaces,
    RemovedNeverBound,
    RemovedMsrpGone,
    RemovedGroupGone,
    RemovedExpired,
}

impl Counter {
    /// Every counter, in registration order: `ALL[i] as usize == i` (checked at compile time).
    pub const ALL: [Counter; 25] = [
        Counter::Joins,
        Counter::AnonymousJoins,
        Counter::ModifiedAliases,
        Counter::Leaves,
        Counter::ActiveParticipants,
        Counter::RefusedUnknownGroup,
        Counter::RefusedNoIdentity,
        Counter::RefusedBadRequest,
        Counter::RefusedPolicy,
        Counter::RefusedAnonymity,
        Counter::RefusedConferenceFull,
        Counter::RefusedAlreadyJoined,
        Counter::RefusedBadOffer,
        Counter::RefusedNotAcceptable,
        Counter::RefusedPrivacyUnavailable,
        Counter::RefusedTableFull,
        Counter::RefusedRelayUnavailable,
        Counter::RefusedInternal,
        Counter::Reloads,
        Counter::ReloadFailures,
        Counter::RefusedPlaces,
        Counter::RemovedNeverBound,
        Counter::RemovedMsrpGone,
        Counter::RemovedGroupGone,
        Counter::RemovedExpired,
    ];

    /// (name, description), NUL-terminated for Kamailio. The match is exhaustive: a new counter
    /// cannot be added without its name.
    pub fn describe(self) -> (&'static CStr, &'static CStr) {
        match self {
            Counter::Joins => (c"joins", c"INVITEs answered 200 OK (participants admitted)"),
            Counter::AnonymousJoins => (
                c"anonymous_joins",
                c"admitted participants that asked for anonymity",
            ),
            Counter::ModifiedAliases => (
                c"modified_aliases",
                c"admitted participants whose identity was made unique (multipart 200 OK)",
            ),
            Counter::Leaves => (
                c"leaves",
                c"participants gone (their BYE, or a removal by the focus)",
            ),
            Counter::ActiveParticipants => (
                c"active_participants",
                c"participants currently in a conference",
            ),
            Counter::RefusedUnknownGroup => (
                c"refused_unknown_group",
                c"INVITEs refused 404: no such group",
            ),
            Counter::RefusedNoIdentity => (
                c"refused_no_identity",
                c"INVITEs refused 403: no authenticated identity",
            ),
            Counter::RefusedBadRequest => (
                c"refused_bad_request",
                c"INVITEs refused 400: malformed From or display name",
            ),
            Counter::RefusedPolicy => (
                c"refused_policy",
                c"INVITEs refused 403: the group's join-handling is false",
            ),
            Counter::RefusedAnonymity => (
                c"refused_anonymity",
                c"INVITEs refused 403: allow-anonymity is false",
            ),
            Counter::RefusedConferenceFull => (
                c"refused_conference_full",
                c"INVITEs refused 486: max-participant-count reached",
            ),
            Counter::RefusedAlreadyJoined => (
                c"refused_already_joined",
                c"INVITEs refused 486: the identity is already a participant",
            ),
            Counter::RefusedBadOffer => (
                c"refused_bad_offer",
                c"INVITEs refused 488: no usable MSRP offer",
            ),
            Counter::RefusedNotAcceptable => (
                c"refused_not_acceptable",
                c"INVITEs refused 406: Accept excludes multipart/mixed",
            ),
            Counter::RefusedPrivacyUnavailable => (
                c"refused_privacy_unavailable",
                c"INVITEs refused 500: Privacy critical asked for privacy the focus cannot provide",
            ),
            Counter::RefusedTableFull => (
                c"refused_table_full",
                c"INVITEs refused 503: the alias table is full",
            ),
            Counter::RefusedRelayUnavailable => (
                c"refused_relay_unavailable",
                c"INVITEs refused 503: the relay did not acknowledge the join",
            ),
            Counter::RefusedInternal => {
                (c"refused_internal", c"INVITEs refused 500: internal error")
            }
            Counter::Reloads => (c"reloads", c"successful chat_alias.reload commands"),
            Counter::ReloadFailures => (
                c"reload_failures",
                c"refused chat_alias.reload commands (old groups kept)",
            ),
            Counter::RefusedPlaces => (
                c"refused_places",
                c"INVITEs refused 486: the identity holds max_places_per_identity places already",
            ),
            Counter::RemovedNeverBound => (
                c"removed_never_bound",
                c"participants the focus removed (BYE) because their MSRP session was not bound within bind_timeout",
            ),
            Counter::RemovedMsrpGone => (
                c"removed_msrp_gone",
                c"participants the focus removed (BYE) because their MSRP connection was gone for msrp_gone_timeout",
            ),
            Counter::RemovedGroupGone => (
                c"removed_group_gone",
                c"participants the focus removed (BYE) because a reload removed their group",
            ),
            Counter::RemovedExpired => (
                c"removed_expired",
                c"participants the focus removed (BYE) because their dialog lasted dialog_timeout",
            ),
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < Counter::ALL.len() {
        assert!(
            Counter::ALL[i] as usize == i,
            "Counter::ALL must follow the discriminants"
        );
        i += 1;
    }
};

pub fn refusal_counter(kind: RefusalKind) -> Counter {
    match kind {
        RefusalKind::UnknownGroup => Counter::RefusedUnknownGroup,
        RefusalKind::NoIdentity => Counter::RefusedNoIdentity,
        RefusalKind::BadRequest => Counter::RefusedBadRequest,
        RefusalKind::Policy => Counter::RefusedPolicy,
        RefusalKind::Anonymity => Counter::RefusedAnonymity,
        RefusalKind::ConferenceFull => Counter::RefusedConferenceFull,
        RefusalKind::AlreadyJoined => Counter::RefusedAlreadyJoined,
        RefusalKind::TooManyPlaces => Counter::RefusedPlaces,
        RefusalKind::BadOffer => Counter::RefusedBadOffer,
        RefusalKind::NotAcceptable => Counter::RefusedNotAcceptable,
        RefusalKind::PrivacyUnavailable => Counter::RefusedPrivacyUnavailable,
        RefusalKind::TableFull => Counter::RefusedTableFull,
        RefusalKind::RelayUnavailable => Counter::RefusedRelayUnavailable,
        RefusalKind::Internal => Counter::RefusedInternal,
    }
}
