//! What the table keeps of a participant's SDP offer beyond its identity: the `a=chatroom` tokens
//! (RFC 7701 §5.2) the relay acts upon and the group's private-message permission as flag bits, and
//! lists (accept-wrapped-types) squeezed into a fixed-size field.
/// The participant `flags` bits the module defines (one place for them): the `a=chatroom` tokens
/// the relay acts upon and the group's private-message permission. Other chatroom tokens are not
/// kept (the relay ignores them).
pub mod participant_flags {
    /// The group allows this participant private messages.
    pub const PRIVATE_MESSAGES_ALLOWED: u32 = 1 << 0;
    /// `a=chatroom:nickname`.
    pub const CHATROOM_NICKNAME: u32 = 1 << 1;
    /// `a=chatroom:nicknames`.
    pub const CHATROOM_NICKNAMES: u32 = 1 << 2;
    /// `a=chatroom:private-messages`.
    pub const CHATROOM_PRIVATE_MESSAGES: u32 = 1 << 3;

    const TOKENS: [(u32, &str); 3] = [
        (CHATROOM_NICKNAME, "nickname"),
        (CHATROOM_NICKNAMES, "nicknames"),
        (CHATROOM_PRIVATE_MESSAGES, "private-messages"),
    ];

    /// The bits for an offer's chatroom tokens (case-insensitive) and the group's permission.
    pub fn encode<S: AsRef<str>>(chatroom: &[S], private_messages_allowed: bool) -> u32 {
        let mut f = if private_messages_allowed {
            PRIVATE_MESSAGES_ALLOWED
        } else {
            0
        };
        for t in chatroom {
            for (bit, name) in TOKENS {
                if t.as_ref().eq_ignore_ascii_case(name) {
                    f |= bit;
                }
            }
        }
        f
    }

    /// The chatroom tokens the bits stand for (lower case, in a fixed order).
    pub fn chatroom(flags: u32) -> Vec<String> {
        TOKENS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| (*name).to_string())
            .collect()
    }

    pub fn private_messages_allowed(flags: u32) -> bool {
        flags & PRIVATE_MESSAGES_ALLOWED != 0
    }
}

/// Joins list items with single spaces into at most `max` bytes. An item that does not fit in
/// what is left, or that is empty or contains whitespace (it could not be split back), is dropped;
/// later, shorter items may still be kept. Never refuses.
pub fn compact_list<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let mut out = String::new();
    for it in items {
        let it = it.as_ref();
        if it.is_empty() || it.chars().any(char::is_whitespace) {
            continue;
        }
        let need = it.len() + usize::from(!out.is_empty());
        if out.len() + need > max {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(it);
    }
    out
}
