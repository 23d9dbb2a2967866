//! The accept loop every protocol role (SMTP, POP3, later IMAP) runs: at most `max_connections` sessions
//! at once, a protocol-specific refusal line for the connection over the cap, and on shutdown no new
//! connections while the open ones finish (each session watches the same token and says goodbye).
//! [`wire`] is the buffered, time-bounded reading and writing that each session does.

pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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

pub struct Limits {
    pub max_connections: usize,
    /// Sent to a connection over the cap before closing it: `421 4.7.0 …` for SMTP, `-ERR [SYS/TEMP] …`
    /// for POP3.
    pub refusal: Vec<u8>,
}

/// Accepts until `shutdown` is cancelled, runs `session` for each connection, then waits for every
/// session to end. `refused` is called for each connection turned away at the cap.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
    refused: impl Fn(),
    session: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusal: Arc<[u8]> = limits.refusal.into();
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused();
            let refusal = refusal.clone();
            tracker.spawn(async move {
                let _ = stream.write_all(&refusal).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let work = session(stream, peer);
        tracker.spawn(async move {
            work.await;
            drop(slot);
        });
    }
    tracker.close();
    tracker.wait().await;
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
            Limits { max_connections: 1, refusal: b"busy\r\n".to_vec() },
            shutdown.clone(),
            move || {
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
}
