//! The module's settings as the operator wrote them in `modparam("chat_alias", …)`, read once in
//! mod_init, and their range checks.
#[derive(Debug, Clone)]
pub struct Modparams {
    /// Directory of OMA XDM group documents (`*.xml`).
    pub groups_dir: String,
    /// The relay's control socket (Unix stream).
    pub relay_socket: String,
    /// The focus socket the relay asks (Unix datagram); empty: `<relay_socket>.focus`.
    pub focus_socket: String,
    /// The uid whose datagrams the focus socket answers; None: Kamailio's own.
    pub focus_allowed_uid: Option<u32>,
    /// How long a worker waits for the relay to acknowledge a join or leave.
    pub relay_timeout_ms: u32,
    /// `Retry-After` seconds on 503 answers.
    pub retry_after: u32,
    /// Longest display name accepted, in Unicode scalar values.
    pub max_display_name_chars: u32,
    /// Participants across all conferences (split evenly over the stripes).
    pub max_participants: u32,
    /// Conferences active at once (split evenly over the stripes).
    pub max_conferences: u32,
    /// Number of independently locked stripes of the alias table.
    pub table_stripes: u32,
    /// Places one authenticated identity may hold in one conference, anonymous and named together
    /// (a sock-puppet bound); 0 = no limit.
    pub max_places_per_identity: u32,
    /// Seconds after its 200 OK within which a participant must bind its MSRP session, else the
    /// focus ends its dialog (0: never).
    pub bind_timeout: u32,
    /// Seconds a participant's MSRP connection may stay gone before the focus ends its dialog
    /// (0: never).
    pub msrp_gone_timeout: u32,
    /// Seconds a participant's dialog may last before the focus ends it (0: no limit).
    pub dialog_timeout: u32,
}

impl Modparams {
    /// Checks ranges; the error names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: u32| {
            if v == 0 {
                Err(format!("modparam {name} must be > 0"))
            } else {
                Ok(())
            }
        };
        positive("max_participants", self.max_participants)?;
        positive("max_conferences", self.max_conferences)?;
        positive("table_stripes", self.table_stripes)?;
        positive("relay_timeout_ms", self.relay_timeout_ms)?;
        positive("max_display_name_chars", self.max_display_name_chars)?;
        if self.table_stripes > 1024 {
            return Err("modparam table_stripes must be <= 1024".into());
        }
        if self.groups_dir.is_empty() {
            return Err("modparam groups_dir is required".into());
        }
        if self.relay_socket.is_empty() {
            return Err("modparam relay_socket is required".into());
        }
        Ok(())
    }

    /// The places-per-identity bound for the alias table (`None`: unlimited).
    pub fn places_per_identity(&self) -> Option<u32> {
        (self.max_places_per_identity > 0).then_some(self.max_places_per_identity)
    }

    /// Capacity of one stripe: the totals divided evenly, rounded up.
    pub fn per_stripe(&self) -> (u32, u32) {
        let s = self.table_stripes.max(1);
        (
            self.max_conferences.div_ceil(s),
            self.max_participants.div_ceil(s),
        )
    }
}
