//! `OPTIONS` to a SIP server: is anything answering there? (Blocking; used by `make demo` to
//! decide whether to start a stack, and handy as a smoke test.)
use crate::random;
use crate::sip::{SipMessage, StreamDecoder, Transport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Sends OPTIONS and returns the final response's (code, reason), or why there is none.
pub fn ping(
    server: SocketAddr,
    transport: Transport,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let deadline = Instant::now() + timeout;
    match transport {
        Transport::Udp => {
            let any = if server.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(any).map_err(|e| e.to_string())?;
            s.connect(server).map_err(|e| e.to_string())?;
            let req = options(
                server,
                transport,
                s.local_addr().map_err(|e| e.to_string())?,
            );
            let mut interval = Duration::from_millis(250);
            let mut buf = vec![0u8; 65536];
            loop {
                let _ = s.send(&req);
                let wait_until = (Instant::now() + interval).min(deadline);
                while let Some(left) = wait_until.checked_duration_since(Instant::now()) {
                    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                        .map_err(|e| e.to_string())?;
                    match s.recv(&mut buf) {
                        Ok(n) => {
                            if let Some(r) = final_response(&buf[..n]) {
                                return Ok(r);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            return Err(format!("nothing listens on udp {server}"))
                        }
                        Err(_) => break,
                    }
                }
                if Instant::now() >= deadline {
                    return Err(format!("no answer from {server} within {timeout:?}"));
                }
                interval *= 2;
            }
        }
        Transport::Tcp => {
            let mut s = TcpStream::connect_timeout(&server, timeout).map_err(|e| e.to_string())?;
            let req = options(
                server,
                transport,
                s.local_addr().map_err(|e| e.to_string())?,
            );
            s.write_all(&req).map_err(|e| e.to_string())?;
            let mut d = StreamDecoder::default();
            let mut buf = vec![0u8; 65536];
            loop {
                while let Some(m) = d.poll() {
                    let m = m.map_err(|e| e.to_string())?;
                    if let Some(c) = m.code().filter(|c| *c >= 200) {
                        return Ok((c, m.reason().to_string()));
                    }
                }
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .ok_or_else(|| format!("no answer from {server} within {timeout:?}"))?;
                s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(|e| e.to_string())?;
                match s.read(&mut buf) {
                    Ok(0) => return Err("connection closed".into()),
                    Ok(n) => d.feed(&buf[..n]),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}

fn final_response(b: &[u8]) -> Option<(u16, String)> {
    let m = SipMessage::parse(b).ok()?;
    let c = m.code().filter(|c| *c >= 200)?;
    Some((c, m.reason().to_string()))
}

fn options(server: SocketAddr, t: Transport, local: SocketAddr) -> Vec<u8> {
    let tag = random::hex::<8>();
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/{} {local};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:ping@{}>;tag={tag}\r\nTo: <sip:{server}>\r\nCall-ID: {}\r\nCSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        t.via(),
        random::hex::<8>(),
        local.ip(),
        random::hex::<12>()
    )
    .into_bytes()
}
