//! The SIP side of joining: the INVITE/ACK/BYE user agent client (sans-IO), the SDP offer and the
//! reading of the 200 OK. Messages and their stream framing are `chat_alias_proto::sip::message`.
pub mod answer;
pub mod uac;

pub use chat_alias_proto::sip::message;

pub use answer::{parse_join_answer, JoinAnswer};
pub use message::{SipMessage, StartLine, StreamDecoder};
pub use uac::{InviteParams, Uac, UacEvent};

/// The SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP with RFC 3261 retransmissions (timers A/B, E/F).
    Udp,
    /// TCP (reliable: no retransmissions, timers B and F still bound the wait).
    Tcp,
}

impl Transport {
    /// The Via transport token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

/// The SDP offer of a Chat Alias client (RFC 4975 §8, RFC 6135, RFC 7701 §5.2): one
/// `m=message <port> TCP/MSRP *` line that accepts message/cpim wrapping text/plain, offers both
/// roles (`actpass`) and asks for the chat room features.
pub fn msrp_offer(ip: std::net::IpAddr, port: u16, path: &str, session_id: u64) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\n\
         o=- {session_id} 1 IN {family} {ip}\r\n\
         s=-\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=message {port} TCP/MSRP *\r\n\
         a=accept-types:message/cpim\r\n\
         a=accept-wrapped-types:text/plain\r\n\
         a=path:{path}\r\n\
         a=setup:actpass\r\n\
         a=chatroom:nickname private-messages\r\n"
    )
}
