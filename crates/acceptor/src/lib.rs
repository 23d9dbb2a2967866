//! The accept loop every protocol role (SMTP, POP3, IMAP) runs: global and per-address connection
//! caps shared by a process's listeners, a protocol-specific refusal line for a connection over a cap,
//! and on shutdown no new connections while the open ones finish within a grace period (each session
//! watches the same token and says goodbye).
//! [`wire`] is the buffered, time-bounded reading and writing that each session does; [`proxy`] reads
//! the PROXY protocol header a load balancer puts before a session; [`deflate`] is the compression a
//! protocol may turn on in the wire (IMAP COMPRESS=DEFLATE).

pub mod deflate;
pub mod proxy;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailbus_tls::ServerTls;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "binding {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds a listener, with an error that names the address (port 25 taken, or not allowed to bind it).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
}

/// The address a bound listener listens on (port 0 resolved), for the roles' accessors.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().expect("bound listener has an address")
}

/// The numbers behind a [`ConnectionLimits`]: sessions at once, and from one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    pub per_address: usize,
}

/// The connection caps of one process, shared by the listeners of one service (port 25; submission on 587
/// and 465; IMAP on 143 and 993; POP3 on 110 and 995): at most `max` sessions
/// at once, and at most `max_per_ip` from one client address (IPv6 clients are counted per address).
pub struct ConnectionLimits {
    slots: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyConnections,
    TooManyFromAddress,
}

/// A connection's place under the caps; dropping it frees the place.
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn with(caps: Caps) -> Arc<Self> {
        Self::new(caps.total, caps.per_address)
    }

    pub fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits { slots: Arc::new(Semaphore::new(max)), per_ip: Mutex::default(), max_per_ip })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| Refusal::TooManyConnections)?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *count += 1;
        Ok(Admission { limits: self.clone(), ip, _slot: slot })
    }
}

/// How one listener admits connections.
pub struct Admit {
    pub limits: Arc<ConnectionLimits>,
    /// Sent to a connection over a cap before closing it: `421 4.7.0 …` for SMTP, `-ERR [SYS/TEMP] …` for
    /// POP3.
    pub refusal: Vec<u8>,
    /// Set on an implicit-TLS listener (465, 993, 995): its clients speak TLS from the first byte, so the
    /// refusal goes after the handshake (RFC 8314 §3.1), where a client can show it, instead of plaintext
    /// that it would report as a TLS error.
    pub implicit_tls: Option<ServerTls>,
    /// After shutdown, how long open sessions get to finish before the loop stops waiting for them.
    pub grace: Duration,
    /// Connections from these addresses start with a PROXY header naming the real client, which then
    /// stands for the connection's address everywhere: the caps, the session, the logs.
    pub proxies: proxy::TrustedProxies,
}

/// How long a refused client on an implicit-TLS port gets to finish its handshake and hear why.
const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a trusted proxy gets to send its header (HAProxy sends it with the connection).
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections from trusted proxies whose header has not arrived yet, per listener. They are not
/// sessions yet, so the caps do not count them; this does, so that silent connections from a trusted
/// network cannot pile up.
const MAX_PENDING_HEADERS: usize = 512;

/// Accepts until `shutdown` is cancelled, runs `session` for each admitted connection, then waits (up to
/// the grace period) for the sessions to end. `refused` is called for each connection turned away. A
/// connection from a trusted proxy is admitted (and handed to `session`) as its header's client, once
/// that header is read, in the connection's own task.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    admit: Admit,
    shutdown: CancellationToken,
    refused: impl Fn(Refusal) + Send + Sync + 'static,
    session: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let refusal: Arc<[u8]> = admit.refusal.into();
    let (refused, session) = (Arc::new(refused), Arc::new(session));
    let pending_headers = Arc::new(Semaphore::new(MAX_PENDING_HEADERS));
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (limits, refusal, refused, session, implicit_tls) =
            (admit.limits.clone(), refusal.clone(), refused.clone(), session.clone(), admit.implicit_tls.clone());
        let waiting = if admit.proxies.trusts(peer.ip()) {
            match pending_headers.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(%peer, "too many connections waiting for their PROXY header; dropped");
                    continue;
                }
            }
        } else {
            None
        };
        let shutdown = shutdown.clone();
        let start = async move {
            let client = match waiting {
                None => peer,
                Some(permit) => {
                    let header = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        header = tokio::time::timeout(PROXY_HEADER_TIMEOUT, proxy::read_header(&mut stream)) => header,
                    };
                    drop(permit);
                    match header {
                        Ok(Ok(client)) => client.unwrap_or(peer),
                        Ok(Err(error)) => {
                            return tracing::info!(%peer, %error, "connection from a trusted proxy dropped");
                        }
                        Err(_) => return tracing::info!(%peer, "no PROXY header from a trusted proxy in time"),
                    }
                }
            };
            match limits.admit(client.ip()) {
                Ok(admission) => {
                    session(stream, client).await;
                    drop(admission);
                }
                Err(reason) => {
                    refused(reason);
                    refuse(stream, &refusal, implicit_tls.as_ref()).await;
                }
            }
        };
        tracker.spawn(start);
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(admit.grace, tracker.wait()).await.is_err() {
        tracing::warn!(sessions = tracker.len(), "sessions still open after the shutdown grace period");
    }
}

/// Says why a connection is turned away, over TLS on an implicit-TLS listener, then closes it.
async fn refuse(mut stream: TcpStream, refusal: &[u8], implicit_tls: Option<&ServerTls>) {
    let Some(tls) = implicit_tls else {
        let _ = stream.write_all(refusal).await;
        return;
    };
    let said = async {
        let mut stream = tls.accept(stream).await?;
        stream.write_all(refusal).await?;
        stream.shutdown().await
    };
    if let Err(error) = tokio::time::timeout(REFUSAL_HANDSHAKE_TIMEOUT, said)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(%error, "refusal over TLS not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_over_the_cap_get_the_refusal_and_shutdown_waits_for_sessions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let release = CancellationToken::new();
        let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = refusals.clone();
        let held = release.clone();
        let server = tokio::spawn(accept_loop(
            listener,
            Admit {
                limits: ConnectionLimits::new(1, 1),
                refusal: b"busy\r\n".to_vec(),
                implicit_tls: None,
                grace: Duration::from_secs(30),
                proxies: Default::default(),
            },
            shutdown.clone(),
            move |_| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
            move |mut stream, _| {
                let held = held.clone();
                async move {
                    stream.write_all(b"hello\r\n").await.unwrap();
                    held.cancelled().await;
                }
            },
        ));
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut line = [0u8; 7];
        first.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"hello\r\n");
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut refusal = Vec::new();
        second.read_to_end(&mut refusal).await.unwrap();
        assert_eq!(refusal, b"busy\r\n");
        assert_eq!(refusals.load(std::sync::atomic::Ordering::SeqCst), 1);
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.is_finished(), "shutdown must wait for the open session");
        release.cancel();
        server.await.unwrap();
    }

    /// RFC 8314 §3.1: on an implicit-TLS port, the client over the cap hears why inside TLS.
    #[tokio::test]
    async fn a_refusal_on_an_implicit_tls_listener_comes_after_the_handshake() {
        let pem = mailbus_tls::self_signed(&["mx.test".to_owned()]).unwrap();
        let tls = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            Admit {
                limits: ConnectionLimits::new(1, 1),
                refusal: b"* BYE busy\r\n".to_vec(),
                implicit_tls: Some(tls.clone()),
                grace: Duration::from_secs(1),
                proxies: Default::default(),
            },
            shutdown.clone(),
            |_| {},
            |mut stream, _| async move {
                // Plain bytes: the test's first client only needs to know it holds the one place.
                let _ = stream.write_all(b"in\r\n").await;
                let _ = stream.read(&mut [0u8; 1]).await;
            },
        ));
        let mut held = TcpStream::connect(addr).await.unwrap();
        held.read_exact(&mut [0u8; 4]).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(mailbus_tls::client_config_trusting(&pem.cert_pem).unwrap());
        let name = rustls_pki_types::ServerName::try_from("mx.test").unwrap();
        let mut client = connector.connect(name, TcpStream::connect(addr).await.unwrap()).await.expect("a handshake");
        let mut refusal = Vec::new();
        client.read_to_end(&mut refusal).await.unwrap();
        assert_eq!(refusal, b"* BYE busy\r\n");
        shutdown.cancel();
    }

    #[test]
    fn per_address_cap_is_separate_from_the_global_cap_and_places_come_back() {
        let limits = ConnectionLimits::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::TooManyFromAddress));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::TooManyConnections));
        drop(first);
        assert!(limits.admit(a).is_ok(), "a closed connection frees its places");
    }
}
