//! A minimal SIP UAC for the end-to-end tests: builds requests, sends them over UDP (with RFC 3261
//! timer A retransmissions) or TCP (framed by Content-Length), and parses responses.
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To").or(self.header("t"))?;
        to.split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(|s| s.to_string())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    let mut parts = status.splitn(3, ' ');
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = raw[head_end + 4..].to_vec();
    Some(Response {
        code,
        reason,
        headers,
        body,
        raw: raw.to_vec(),
    })
}

pub struct Client {
    pub transport: Transport,
    server_port: u16,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    tcp_buf: Vec<u8>,
    pub local_port: u16,
    /// The address the client sends from (and puts in Via and Contact).
    pub local_ip: IpAddr,
}

fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:016x}", h.finish())
}

impl Client {
    pub fn new(transport: Transport, server_port: u16) -> Client {
        Client::new_from(IpAddr::V4(Ipv4Addr::LOCALHOST), transport, server_port)
    }

    /// A client whose socket is bound to `local_ip` (e.g. 127.0.0.2, another loopback address),
    /// talking to the server on 127.0.0.1:`server_port`.
    pub fn new_from(local_ip: IpAddr, transport: Transport, server_port: u16) -> Client {
        let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server_port);
        match transport {
            Transport::Udp => {
                let s = UdpSocket::bind(SocketAddr::new(local_ip, 0)).unwrap();
                s.connect(server).unwrap();
                let local_port = s.local_addr().unwrap().port();
                Client {
                    transport,
                    server_port,
                    udp: Some(s),
                    tcp: None,
                    tcp_buf: Vec::new(),
                    local_port,
                    local_ip,
                }
            }
            Transport::Tcp => {
                let s = if local_ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
                    TcpStream::connect(server).unwrap()
                } else {
                    tcp_connect_from(local_ip, server)
                };
                let local_port = s.local_addr().unwrap().port();
                Client {
                    transport,
                    server_port,
                    udp: None,
                    tcp: Some(s),
                    tcp_buf: Vec::new(),
                    local_port,
                    local_ip,
                }
            }
        }
    }

    pub fn via_transport(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        match (&self.udp, &mut self.tcp) {
            (Some(u), _) => {
                u.send(bytes).unwrap();
            }
            (_, Some(t)) => t.write_all(bytes).unwrap(),
            _ => unreachable!(),
        }
    }

    /// Receives one message (any), or None after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        match self.transport {
            Transport::Udp => {
                let u = self.udp.as_ref().unwrap();
                let mut buf = vec![0u8; 65536];
                loop {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    u.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                        .unwrap();
                    match u.recv(&mut buf) {
                        Ok(n) => {
                            if let Some(r) = parse_response(&buf[..n]) {
                                return Some(r);
                            }
                        }
                        Err(_) => return None,
                    }
                }
            }
            Transport::Tcp => loop {
                if let Some(end) = self.tcp_buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.tcp_buf[..end]).to_string();
                    let cl: usize = head
                        .split("\r\n")
                        .filter_map(|l| l.split_once(':'))
                        .find(|(n, _)| {
                            n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l"
                        })
                        .and_then(|(_, v)| v.trim().parse().ok())
                        .unwrap_or(0);
                    if self.tcp_buf.len() >= end + 4 + cl {
                        let msg: Vec<u8> = self.tcp_buf.drain(..end + 4 + cl).collect();
                        if let Some(r) = parse_response(&msg) {
                            return Some(r);
                        }
                        continue;
                    }
                }
                let left = deadline.checked_duration_since(Instant::now())?;
                let t = self.tcp.as_mut().unwrap();
                t.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                let mut buf = [0u8; 65536];
                match t.read(&mut buf) {
                    Ok(0) => return None,
                    Ok(n) => self.tcp_buf.extend_from_slice(&buf[..n]),
                    Err(_) => return None,
                }
            },
        }
    }

    /// Sends a request and returns its final response, retransmitting over UDP (T1 = 500 ms,
    /// doubling) until a provisional or final response arrives.
    pub fn transact(&mut self, request: &str, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(500);
        let mut provisional = false;
        self.send(request.as_bytes());
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let wait = if self.transport == Transport::Udp && !provisional {
                interval.min(left)
            } else {
                left
            };
            match self.recv(wait) {
                Some(r) if r.code >= 200 => return Some(r),
                Some(_) => provisional = true,
                None => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    if self.transport == Transport::Udp && !provisional {
                        self.send(request.as_bytes());
                        interval = (interval * 2).min(Duration::from_secs(4));
                    }
                }
            }
        }
    }

    pub fn options(&mut self, timeout: Duration) -> Option<Response> {
        let req = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            port = self.server_port,
            t = self.via_transport(),
            ip = self.local_ip,
            lp = self.local_port,
            b = random_token(),
            tag = random_token(),
            cid = random_token()
        );
        self.transact(&req, timeout)
    }
}

/// A TCP connection from `local` (any port) to `server`: std cannot bind before connecting.
fn tcp_connect_from(local: IpAddr, server: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let (IpAddr::V4(l), IpAddr::V4(r)) = (local, server.ip()) else {
        panic!("IPv4 only");
    };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let a = sin(l, 0);
        let rc = libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len);
        assert!(rc == 0, "bind {local}: {}", std::io::Error::last_os_error());
        let b = sin(r, server.port());
        let rc = libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len);
        assert!(
            rc == 0,
            "connect {server}: {}",
            std::io::Error::last_os_error()
        );
        TcpStream::from_raw_fd(fd)
    }
}

/// An MSRP SDP offer as a Chat Alias client sends it.
pub fn msrp_offer(port: u16, session: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {port} TCP/MSRP *\r\n\
         a=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain\r\n\
         a=path:msrp://127.0.0.1:{port}/{session};tcp\r\na=setup:actpass\r\na=chatroom:nickname private-messages\r\n"
    )
}

/// What a test wants in its INVITE.
#[derive(Clone, Debug)]
pub struct Invite {
    pub group: String,
    /// P-Asserted-Identity value (None: header absent).
    pub asserted: Option<String>,
    /// The full From value without the tag (e.g. `"bob" <sip:anonymous@anonymous.invalid>`).
    pub from: String,
    pub privacy: Option<String>,
    pub body: Option<(String, String)>,
    pub extra_headers: Vec<String>,
    pub call_id: String,
    pub from_tag: String,
    pub branch: String,
    pub cseq: u32,
}

impl Invite {
    /// An anonymous join as the CR describes it.
    pub fn anonymous(group: &str, identity: &str, alias: Option<&str>) -> Invite {
        let from = match alias {
            Some(a) => format!(
                "\"{}\" <sip:anonymous@anonymous.invalid>",
                a.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            None => "<sip:anonymous@anonymous.invalid>".to_string(),
        };
        Invite {
            group: group.into(),
            asserted: Some(format!("<{identity}>")),
            from,
            privacy: Some("id".into()),
            body: Some(("application/sdp".into(), msrp_offer(40000, &random_token()))),
            extra_headers: vec![],
            call_id: format!("{}@test", random_token()),
            from_tag: random_token(),
            branch: format!("z9hG4bK{}", random_token()),
            cseq: 1,
        }
    }

    /// A join with the user's real identity.
    pub fn named(group: &str, identity: &str, name: Option<&str>) -> Invite {
        let mut i = Invite::anonymous(group, identity, None);
        i.privacy = None;
        i.from = match name {
            Some(n) => format!("\"{n}\" <{identity}>"),
            None => format!("<{identity}>"),
        };
        i
    }

    pub fn render(&self, c: &Client) -> String {
        let mut s = format!(
            "INVITE {g} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch={br};rport\r\nMax-Forwards: 70\r\n\
             From: {from};tag={tag}\r\nTo: <{g}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:{ip}:{lp};transport={tl}>\r\n",
            g = self.group,
            t = c.via_transport(),
            ip = c.local_ip,
            lp = c.local_port,
            br = self.branch,
            from = self.from,
            tag = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
            tl = c.via_transport().to_lowercase(),
        );
        if let Some(p) = &self.asserted {
            s += &format!("P-Asserted-Identity: {p}\r\n");
        }
        if let Some(p) = &self.privacy {
            s += &format!("Privacy: {p}\r\n");
        }
        for h in &self.extra_headers {
            s += h;
            s += "\r\n";
        }
        match &self.body {
            Some((ct, b)) => {
                s += &format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
            }
            None => s += "Content-Length: 0\r\n\r\n",
        }
        s
    }

    fn in_dialog(&self, c: &Client, method: &str, cseq: u32, to_tag: &str, branch: &str) -> String {
        format!(
            "{m} {g} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch={br};rport\r\nMax-Forwards: 70\r\n\
             From: {from};tag={tag}\r\nTo: <{g}>;tag={tt}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {m}\r\nContent-Length: 0\r\n\r\n",
            m = method,
            g = self.group,
            t = c.via_transport(),
            ip = c.local_ip,
            lp = c.local_port,
            br = branch,
            from = self.from,
            tag = self.from_tag,
            tt = to_tag,
            cid = self.call_id,
        )
    }

    pub fn ack(&self, c: &Client, to_tag: &str) -> String {
        self.in_dialog(
            c,
            "ACK",
            self.cseq,
            to_tag,
            &format!("z9hG4bK{}", random_token()),
        )
    }

    pub fn bye(&self, c: &Client, to_tag: &str) -> String {
        self.in_dialog(
            c,
            "BYE",
            self.cseq + 1,
            to_tag,
            &format!("z9hG4bK{}", random_token()),
        )
    }
}

/// Sends the INVITE, waits for the final answer, ACKs a 2xx.
pub fn join(c: &mut Client, inv: &Invite) -> Response {
    let r = c
        .transact(&inv.render(c), Duration::from_secs(8))
        .expect("no final response to INVITE");
    if (200..300).contains(&r.code) {
        let tag = r.to_tag().expect("2xx without To-tag");
        let ack = inv.ack(c, &tag);
        c.send(ack.as_bytes());
    }
    r
}

/// Sends BYE for an established join; returns the BYE's final response.
pub fn leave(c: &mut Client, inv: &Invite, ok: &Response) -> Response {
    let tag = ok.to_tag().expect("no To-tag");
    c.transact(&inv.bye(c, &tag), Duration::from_secs(8))
        .expect("no response to BYE")
}

/// A request the server sent to a test client (e.g. the focus's BYE).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn tag_of(&self, header: &str) -> Option<String> {
        self.header(header)?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(str::to_string)
    }
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

pub fn parse_request(raw: &[u8]) -> Option<Incoming> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.splitn(3, ' ');
    let method = first.next()?.to_string();
    let uri = first.next()?.to_string();
    if first.next()? != "SIP/2.0" {
        return None;
    }
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Incoming {
        method,
        uri,
        headers,
        raw: raw.to_vec(),
    })
}

impl Client {
    /// The next request the server sends this (UDP) client within `timeout`; responses are skipped.
    pub fn recv_request(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        let u = self.udp.as_ref().expect("recv_request is for UDP clients");
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            u.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match u.recv(&mut buf) {
                Ok(n) => {
                    if let Some(r) = parse_request(&buf[..n]) {
                        return Some(r);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Answers a request the server sent (Via, From, To, Call-ID and CSeq copied).
    pub fn answer(&mut self, req: &Incoming, code: u16, reason: &str) {
        let mut s = format!("SIP/2.0 {code} {reason}\r\n");
        for (n, v) in &req.headers {
            let l = n.to_ascii_lowercase();
            if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"].contains(&l.as_str()) {
                s += &format!("{n}: {v}\r\n");
            }
        }
        s += "Content-Length: 0\r\n\r\n";
        self.send(s.as_bytes());
    }
}
