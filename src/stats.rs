//! The module's statistics counters (group `chat_alias`), in registration order.
use chat_alias_focus::join::RefusalKind;

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
    RefusedTableFull,
    RefusedRelayUnavailable,
    RefusedInternal,
    Reloads,
    ReloadFailures,
}

/// (name, description) per counter, NUL-terminated for Kamailio, in `Counter` order.
pub const COUNTERS: &[(&std::ffi::CStr, &std::ffi::CStr)] = &[
    (c"joins", c"INVITEs answered 200 OK (participants admitted)"),
    (
        c"anonymous_joins",
        c"admitted participants that asked for anonymity",
    ),
    (
        c"modified_aliases",
        c"admitted participants whose identity was made unique (multipart 200 OK)",
    ),
    (
        c"leaves",
        c"participants removed (BYE, dialog expiry or failure)",
    ),
    (
        c"active_participants",
        c"participants currently in a conference",
    ),
    (
        c"refused_unknown_group",
        c"INVITEs refused 404: no such group",
    ),
    (
        c"refused_no_identity",
        c"INVITEs refused 403: no authenticated identity",
    ),
    (
        c"refused_bad_request",
        c"INVITEs refused 400: malformed From or display name",
    ),
    (
        c"refused_policy",
        c"INVITEs refused 403: the group's join-handling is false",
    ),
    (
        c"refused_anonymity",
        c"INVITEs refused 403: allow-anonymity is false",
    ),
    (
        c"refused_conference_full",
        c"INVITEs refused 486: max-participant-count reached",
    ),
    (
        c"refused_already_joined",
        c"INVITEs refused 486: the identity is already a participant",
    ),
    (
        c"refused_bad_offer",
        c"INVITEs refused 488: no usable MSRP offer",
    ),
    (
        c"refused_not_acceptable",
        c"INVITEs refused 406: Accept excludes multipart/mixed",
    ),
    (
        c"refused_table_full",
        c"INVITEs refused 503: the alias table is full",
    ),
    (
        c"refused_relay_unavailable",
        c"INVITEs refused 503: the relay did not acknowledge the join",
    ),
    (c"refused_internal", c"INVITEs refused 500: internal error"),
    (c"reloads", c"successful chat_alias.reload commands"),
    (
        c"reload_failures",
        c"refused chat_alias.reload commands (old groups kept)",
    ),
];

pub fn refusal_counter(kind: RefusalKind) -> Counter {
    match kind {
        RefusalKind::UnknownGroup => Counter::RefusedUnknownGroup,
        RefusalKind::NoIdentity => Counter::RefusedNoIdentity,
        RefusalKind::BadRequest => Counter::RefusedBadRequest,
        RefusalKind::Policy => Counter::RefusedPolicy,
        RefusalKind::Anonymity => Counter::RefusedAnonymity,
        RefusalKind::ConferenceFull => Counter::RefusedConferenceFull,
        RefusalKind::AlreadyJoined => Counter::RefusedAlreadyJoined,
        RefusalKind::BadOffer => Counter::RefusedBadOffer,
        RefusalKind::NotAcceptable => Counter::RefusedNotAcceptable,
        RefusalKind::TableFull => Counter::RefusedTableFull,
        RefusalKind::RelayUnavailable => Counter::RefusedRelayUnavailable,
        RefusalKind::Internal => Counter::RefusedInternal,
    }
}
