//! A DNS server on loopback for the stack tests: it answers TXT, A and MX questions from a table the test
//! sets (and changes while it runs), over UDP and TCP on one port, NXDOMAIN for a name it does not know
//! and an empty answer for a known name without the asked type. Point `MAILBUS_DNS_RESOLVER` at
//! [`TestDns::addr`] and nothing a test does leaves the machine. It is authoritative for everything and
//! recursive for nothing.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Records by lowercased name without the final dot.
#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<RData>>,
}

pub struct TestDns {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    /// Questions answered, for tests that check a lookup happened.
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: CancellationToken,
}

impl TestDns {
    /// Binds UDP and TCP on the same free loopback port and starts answering.
    pub async fn start() -> TestDns {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("binding UDP on loopback");
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let dns = TestDns {
            addr: udp.local_addr().unwrap(),
            zone: Arc::default(),
            queries: Arc::default(),
            stop: CancellationToken::new(),
        };
        tokio::spawn(serve_udp(udp, dns.zone.clone(), dns.queries.clone(), dns.stop.clone()));
        tokio::spawn(serve_tcp(tcp, dns.zone.clone(), dns.queries.clone(), dns.stop.clone()));
        dns
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a TXT record (long ones are split into 255-octet strings, as a zone file would).
    pub fn txt(&self, name: &str, text: &str) -> &Self {
        let chunks = text.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        self.add(name, RData::TXT(TXT::new(chunks)))
    }

    pub fn a(&self, name: &str, address: Ipv4Addr) -> &Self {
        self.add(name, RData::A(A(address)))
    }

    pub fn mx(&self, name: &str, preference: u16, exchange: &str) -> &Self {
        let exchange = Name::from_ascii(format!("{exchange}.")).expect("a valid MX host");
        self.add(name, RData::MX(MX::new(preference, exchange)))
    }

    /// Forgets every record of `name`.
    pub fn remove(&self, name: &str) -> &Self {
        self.zone.lock().unwrap().records.remove(&key(name));
        self
    }

    /// The questions asked so far.
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.queries.lock().unwrap().clone()
    }

    fn add(&self, name: &str, data: RData) -> &Self {
        self.zone.lock().unwrap().records.entry(key(name)).or_default().push(data);
        self
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The answer to one request; `None` for what is not a DNS query at all.
fn answer(request: &[u8], zone: &Mutex<Zone>, queries: &Mutex<Vec<(String, RecordType)>>) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let Some(query) = request.queries.first().cloned() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok();
    };
    let name = key(&query.name().to_ascii());
    queries.lock().unwrap().push((name.clone(), query.query_type()));
    response.add_query(query.clone());
    match zone.lock().unwrap().records.get(&name) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(records) => {
            for data in records.iter().filter(|data| data.record_type() == query.query_type()) {
                response.add_answer(Record::from_rdata(query.name().clone(), 60, data.clone()));
            }
        }
    }
    response.to_vec().ok()
}

async fn serve_udp(
    socket: UdpSocket,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let (len, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(_) => continue,
            },
        };
        if let Some(mut reply) = answer(&buffer[..len], &zone, &queries) {
            if reply.len() > 512 {
                // RFC 1035 §4.2.1: too long for UDP; the TC bit sends the client to TCP.
                let Some(truncated) = truncated(&buffer[..len]) else { continue };
                reply = truncated;
            }
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The question of `request` with the TC bit and no answer.
fn truncated(request: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.truncation = true;
    reply.add_queries(request.queries);
    reply.to_vec().ok()
}

async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (zone, queries, stop) = (zone.clone(), queries.clone(), stop.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            // RFC 1035 §4.2.2: each message is preceded by its two-octet length.
            loop {
                let mut length = [0u8; 2];
                let read = tokio::select! {
                    _ = stop.cancelled() => return,
                    read = stream.read_exact(&mut length) => read,
                };
                if read.is_err() {
                    return;
                }
                let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
                if stream.read_exact(&mut request).await.is_err() {
                    return;
                }
                let Some(reply) = answer(&request, &zone, &queries) else { return };
                let framed = [&(reply.len() as u16).to_be_bytes()[..], &reply].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}
