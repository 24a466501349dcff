//! What the operator asks through Kamailio's RPC (`kamcmd chat_alias.*`): reload the group
//! documents, list the participants (with their real identities: operator only), and the alias
//! table's usage. Each answer is collected here under the stripe locks and returned as plain
//! values; the RPC layer prints it after the locks are released.
use super::relay_answers::participants;
use super::{encode_documents, Host, Level, Module};
use crate::stats::Counter;
use chat_alias_focus::alias_table::Stripe;
use chat_alias_focus::groups::GroupSet;

/// Why a reload changed nothing; the previous groups stay in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The directory holds no group and the reload was not forced: it would end every conference.
    NoGroups { dir: String },
    /// A document does not parse or breaks a rule (file, line and reason).
    Invalid(String),
    /// No shared memory to publish the documents in.
    Publish(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoGroups { dir } => write!(
                f,
                "reload refused: {dir} holds no group document, which would end every conference; \
                 the previous groups stay in force (chat_alias.reload force accepts it)"
            ),
            ReloadError::Invalid(e) => write!(
                f,
                "group documents refused, previous definitions stay in force: {e}"
            ),
            ReloadError::Publish(e) => write!(f, "cannot publish groups: {e}"),
        }
    }
}

/// Reads the group directory and, if every document is valid, publishes it to all processes.
/// On error the previous definitions stay in force and the error names file, line and reason.
/// A directory without any group is refused unless `force`: it would end every conference.
/// Conferences of groups that are gone afterwards are ended by the timer process (BYE to each
/// participant, see [`super::timer_tick`]).
pub fn reload<H: Host>(m: &Module<H>, force: bool) -> Result<usize, ReloadError> {
    let loaded = GroupSet::load_dir(std::path::Path::new(&m.params.groups_dir));
    match loaded {
        Ok((set, _)) if set.is_empty() && !force => {
            m.count(Counter::ReloadFailures, 1);
            let e = ReloadError::NoGroups {
                dir: m.params.groups_dir.clone(),
            };
            m.log(Level::Error, &e.to_string());
            Err(e)
        }
        Ok((set, docs)) => {
            // A conference lives in one stripe: say so when a group could outgrow it.
            let (_, per_stripe) = m.params.per_stripe();
            for g in set
                .iter()
                .filter(|g| g.max_participants.is_some_and(|n| n > per_stripe))
            {
                m.log(
                    Level::Warn,
                    &format!(
                        "group {} allows {} participants but one conference can hold at most {per_stripe} \
                         (max_participants/table_stripes): raise max_participants",
                        g.uri,
                        g.max_participants.unwrap_or(0)
                    ),
                );
            }
            m.host
                .publish_docs(&encode_documents(&docs))
                .map_err(ReloadError::Publish)?;
            m.count(Counter::Reloads, 1);
            m.log(
                Level::Info,
                &format!("loaded {} groups from {}", set.len(), m.params.groups_dir),
            );
            Ok(set.len())
        }
        Err(e) => {
            m.count(Counter::ReloadFailures, 1);
            let e = ReloadError::Invalid(e.to_string());
            m.log(Level::Error, &e.to_string());
            Err(e)
        }
    }
}

/// One line of `chat_alias.list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedParticipant {
    /// The conference key (canonical group URI).
    pub conference: String,
    pub uri: String,
    pub display_name: Option<String>,
    pub anonymous: bool,
    /// The authenticated identity behind the alias.
    pub identity: String,
    pub session: String,
}

/// Every participant of every conference.
pub fn list<H: Host>(m: &Module<H>) -> Vec<ListedParticipant> {
    participants(m, 0, usize::MAX)
        .into_iter()
        .map(|(conference, p)| ListedParticipant {
            conference,
            uri: p.uri,
            display_name: p.display_name,
            anonymous: p.anonymous,
            identity: p.identity_uri,
            session: p.session_id,
        })
        .collect()
}

/// The answer of `chat_alias.stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub conferences: u64,
    pub participants: u64,
    pub max_participants: u32,
    pub max_conferences: u32,
    pub table_stripes: u32,
    pub groups: usize,
}

/// The alias table's usage, summed over the stripes, and the groups this process has loaded.
pub fn stats<H: Host>(m: &Module<H>) -> TableStats {
    let (mut conferences, mut participants) = (0u64, 0u64);
    for i in 0..m.host.stripes() {
        m.host.with_stripe(i, |mem, _| {
            if let Ok(s) = Stripe::attach(mem) {
                let u = s.usage();
                conferences += u64::from(u.conferences.used);
                participants += u64::from(u.participants.used);
            }
        });
    }
    TableStats {
        conferences,
        participants,
        max_participants: m.params.max_participants,
        max_conferences: m.params.max_conferences,
        table_stripes: m.params.table_stripes,
        groups: m.group_count(),
    }
}
