//! Admission of MSRP connections: the caps on open and unbound connections (`--max-connections`,
//! `--max-unbound`, `--max-unbound-per-address`), which unbound connection is evicted to make
//! room, and the opening of a connection.
use super::*;

impl<O: Outlet> Switch<O> {
    /// Open connections that have bound no session yet. (Every bound session has exactly one
    /// connection, and a connection binds at most one session.)
    pub fn unbound(&self) -> usize {
        self.conns.len().saturating_sub(self.bound.len())
    }

    /// Open connections from `peer` that have bound no session yet.
    pub fn unbound_from(&self, peer: IpAddr) -> usize {
        self.unbound_by_addr.get(&peer).map_or(0, BTreeSet::len)
    }

    /// Makes room for one more connection from `peer` ([`Switch::handle_open_from`]).
    ///
    /// A connection that has bound nothing proves nothing, so a crowd of them must not lock
    /// participants out: when a cap is reached ([`Config::max_connections`],
    /// [`Config::max_unbound_per_address`] for `peer`, [`Config::max_unbound`]), the oldest
    /// unbound connection in its scope is closed to make room — one that has sent nothing before
    /// one that has started to speak. A participant binds within a round trip of connecting, so
    /// a flood has to open a cap's worth of connections in that time to push it out. Refused
    /// only when nothing can be evicted (every connection bound, or a cap of 0).
    pub fn admit(&mut self, peer: IpAddr) -> Result<(), ConnLimit> {
        if self.conns.len() >= self.cfg.max_connections
            && !self.evict_unbound(None, Eviction::MaxConnections)
        {
            return Err(ConnLimit::Connections);
        }
        if self.unbound_from(peer) >= self.cfg.max_unbound_per_address
            && !self.evict_unbound(Some(peer), Eviction::PerAddress)
        {
            return Err(ConnLimit::PerAddress);
        }
        if self.unbound() >= self.cfg.max_unbound && !self.evict_unbound(None, Eviction::MaxUnbound)
        {
            return Err(ConnLimit::Unbound);
        }
        Ok(())
    }

    /// Closes the oldest unbound connection (of `peer`, or of all), preferring one that has sent
    /// no byte. False when there is none.
    pub(super) fn evict_unbound(&mut self, peer: Option<IpAddr>, why: Eviction) -> bool {
        let set = match peer {
            Some(p) => self.unbound_by_addr.get(&p),
            None => Some(&self.unbound_age),
        };
        let Some(set) = set else {
            return false;
        };
        let silent = set
            .iter()
            .find(|(_, id)| self.conns.get(id).is_some_and(|c| !c.spoke));
        let Some(&(_, victim)) = silent.or_else(|| set.iter().next()) else {
            return false;
        };
        Metrics::add(self.metrics.evicted(why), 1);
        tracing::debug!(
            conn = victim,
            reason = why.label(),
            "unbound connection evicted"
        );
        self.drop_conn(victim, Some(CloseReason::Evicted));
        true
    }

    /// Takes a connection out of the unbound indexes (it bound, or it is gone).
    pub(super) fn unindex_unbound(&mut self, conn: ConnId, opened: Instant, peer: IpAddr) {
        self.unbound_age.remove(&(opened, conn));
        if let Some(set) = self.unbound_by_addr.get_mut(&peer) {
            set.remove(&(opened, conn));
            if set.is_empty() {
                self.unbound_by_addr.remove(&peer);
            }
        }
    }

    /// A connection was accepted (from an address not worth tracking: tests, the unspecified
    /// address).
    pub fn handle_open(&mut self, now: Instant, conn: ConnId, outlet: O) {
        self.handle_open_from(
            now,
            conn,
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            outlet,
        )
    }

    /// A connection from `peer` was accepted (after [`Switch::admit`] made room for it).
    pub fn handle_open_from(&mut self, now: Instant, conn: ConnId, peer: IpAddr, outlet: O) {
        if let Some(old) = self.conns.get(&conn) {
            // A reused id (never in the driver): forget the old connection's place first.
            let (opened, peer) = (old.opened, old.peer);
            self.unindex_unbound(conn, opened, peer);
        }
        self.unbound_age.insert((now, conn));
        self.unbound_by_addr
            .entry(peer)
            .or_default()
            .insert((now, conn));
        self.conns.insert(
            conn,
            Conn {
                outlet,
                opened: now,
                peer,
                spoke: false,
                binding: None,
                rx: None,
                congested_since: None,
                sending: HashSet::new(),
                receiving: HashSet::new(),
                ended: std::collections::VecDeque::new(),
            },
        );
    }
}
