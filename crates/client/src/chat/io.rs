//! The sockets of a session: the SIP transport (UDP datagrams, or a TCP stream framed by
//! Content-Length), the MSRP connection (a read half polled by the driver, a writer task fed frames
//! in order) and the listener for a relay that connects to us.
use super::*;

pub(super) enum SipIo {
    Udp {
        socket: UdpSocket,
        buf: Vec<u8>,
    },
    Tcp {
        r: OwnedReadHalf,
        w: OwnedWriteHalf,
        decoder: StreamDecoder,
        buf: Vec<u8>,
    },
}

impl SipIo {
    pub(super) async fn connect(
        t: Transport,
        server: SocketAddr,
    ) -> std::io::Result<(SipIo, SocketAddr)> {
        match t {
            Transport::Udp => {
                let any: SocketAddr = match server {
                    SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
                    SocketAddr::V6(_) => "[::]:0".parse().expect("literal"),
                };
                let socket = UdpSocket::bind(any).await?;
                socket.connect(server).await?;
                let local = socket.local_addr()?;
                Ok((
                    SipIo::Udp {
                        socket,
                        buf: vec![0; 65536],
                    },
                    local,
                ))
            }
            Transport::Tcp => {
                let s = TcpStream::connect(server).await?;
                let _ = s.set_nodelay(true);
                let local = s.local_addr()?;
                let (r, w) = s.into_split();
                Ok((
                    SipIo::Tcp {
                        r,
                        w,
                        decoder: StreamDecoder::default(),
                        buf: vec![0; 65536],
                    },
                    local,
                ))
            }
        }
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SipIo::Udp { socket, .. } => socket.send(bytes).await.map(|_| ()),
            SipIo::Tcp { w, .. } => w.write_all(bytes).await,
        }
    }

    /// The next message; `Ok(None)` for a datagram that is not SIP. Cancel-safe.
    pub(super) async fn recv(&mut self) -> std::io::Result<Option<SipMessage>> {
        match self {
            SipIo::Udp { socket, buf } => {
                let n = socket.recv(buf).await?;
                Ok(SipMessage::parse(&buf[..n]).ok())
            }
            SipIo::Tcp {
                r, decoder, buf, ..
            } => loop {
                match decoder.poll() {
                    Some(Ok(m)) => return Ok(Some(m)),
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                    None => {}
                }
                let n = r.read(buf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                decoder.feed(&buf[..n]);
            },
        }
    }

    pub(super) fn is_reliable(&self) -> bool {
        matches!(self, SipIo::Tcp { .. })
    }
}

pub(super) struct MsrpConn {
    pub(super) reader: OwnedReadHalf,
    /// Frames for the writer task, in order.
    pub(super) writer: tmpsc::UnboundedSender<Vec<u8>>,
}

async fn write_frames(mut w: OwnedWriteHalf, mut rx: tmpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        if w.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

impl MsrpConn {
    pub(super) fn new(stream: TcpStream) -> MsrpConn {
        let _ = stream.set_nodelay(true);
        let (reader, w) = stream.into_split();
        let (tx, rx) = tmpsc::unbounded_channel();
        tokio::spawn(write_frames(w, rx));
        MsrpConn { reader, writer: tx }
    }
}

pub(super) async fn read_msrp(c: &mut Option<MsrpConn>, buf: &mut [u8]) -> std::io::Result<usize> {
    match c {
        Some(c) => c.reader.read(buf).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn accept(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

pub(super) fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}
