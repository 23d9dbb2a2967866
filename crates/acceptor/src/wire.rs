//! The byte plumbing of a line-protocol connection: an input buffer the codec decodes from, an output
//! buffer replies collect in (flushed once per batch, which is what PIPELINING needs), and reads bounded
//! by a timeout and by shutdown.

use std::time::Duration;

use mailbus_lines::Decode;

use crate::deflate::Deflate;
use mailbus_tls::{MaybeTls, ServerTls, TlsFacts};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How long one flush may take before the peer is given up on.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pending output beyond which [`Wire::flush_if_large`] writes it out.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// How long a TLS handshake may take, implicit or after STARTTLS/STLS, on every protocol, unless a
/// setting says otherwise (`MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS`). A real client's handshake takes well
/// under a second even on a slow mobile link; a scanner that opens the port and says nothing is let go.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The opening every listener shares: on an implicit-TLS port (465, 993, 995: `implicit_tls` is the
/// server's TLS) the handshake comes before the first byte of the protocol, bounded by `timeout`;
/// elsewhere the stream stays plain. `None` when the handshake fails or takes too long, logged at debug
/// level (port scanners do it all day); the caller drops the connection, having nothing to say that a
/// client without TLS could read.
pub async fn open<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    implicit_tls: Option<&ServerTls>,
    timeout: Duration,
    peer: std::net::SocketAddr,
) -> Option<(MaybeTls<IO>, Option<TlsFacts>)> {
    let mut stream = MaybeTls::Plain(io);
    let Some(tls) = implicit_tls else {
        return Some((stream, None));
    };
    match tokio::time::timeout(timeout, stream.upgrade(tls)).await {
        Ok(Ok(facts)) => Some((stream, Some(facts))),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "implicit TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, ?timeout, "implicit TLS handshake timed out");
            None
        }
    }
}

/// The two clocks of a session that logs in and then reads command lines (POP3, ManageSieve): the login
/// deadline, counted from connecting, and the autologout timer, which a new command starts again and the
/// rest of a partial one does not (so a client dribbling bytes cannot hold a session open).
#[derive(Debug, Clone, Copy)]
pub struct SessionClock {
    login: tokio::time::Instant,
    idle: Duration,
    command: tokio::time::Instant,
}

impl SessionClock {
    pub fn new(login_deadline: tokio::time::Instant, idle: Duration) -> Self {
        SessionClock { login: login_deadline, idle, command: tokio::time::Instant::now() + idle }
    }

    /// Before the next read at `now`: how long it may take, and whether the login deadline is what bounds
    /// it (the session says a different goodbye then). `partial` is whether part of a command is buffered.
    pub fn next_read(&mut self, now: tokio::time::Instant, partial: bool, logged_in: bool) -> (Duration, bool) {
        if !partial {
            self.command = now + self.idle;
        }
        let logging_in = !logged_in && self.login < self.command;
        let deadline = if logging_in { self.login } else { self.command };
        (deadline.saturating_duration_since(now), logging_in)
    }
}

/// Why STARTTLS (or STLS) did not leave a TLS connection behind.
#[derive(Debug)]
pub enum StartTlsError {
    /// The go-ahead could not be written.
    Write(std::io::Error),
    /// The handshake failed or timed out.
    Handshake(std::io::Error),
}

/// Why a read brought no bytes.
#[derive(Debug)]
pub enum ReadError {
    Timeout,
    Shutdown,
    Eof,
    Io(std::io::Error),
    /// The peer's compressed stream is not valid DEFLATE (after [`Wire::start_deflate`]).
    Corrupt,
}

/// What a read makes room for while the peer sends little (a command line): a connection waiting for its
/// client holds this much, not [`READ_CHUNK`].
const SMALL_READ: usize = 512;
/// What a read makes room for once the peer sends more than [`SMALL_READ`] at a time (a message body).
const READ_CHUNK: usize = 8192;

pub struct Wire<IO> {
    io: IO,
    /// Received bytes not yet consumed by the decoder.
    pub input: Vec<u8>,
    /// Replies not yet written.
    pub output: Vec<u8>,
    /// How many bytes the last read brought.
    last_read: usize,
    /// Compression both ways, once the protocol turned it on (IMAP COMPRESS): boxed, so that a
    /// connection without it carries one pointer.
    deflate: Option<Box<Deflate>>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Wire<IO> {
    pub fn new(io: IO) -> Self {
        Wire { io, input: Vec::new(), output: Vec::new(), last_read: 0, deflate: None }
    }

    /// Drops `n` decoded bytes from the front of the input.
    pub fn consume(&mut self, n: usize) {
        self.input.drain(..n);
    }

    /// The next item `decode` finds in the input, with the bytes it used dropped; `None` when more bytes
    /// are needed.
    pub fn next_item<T, E>(&mut self, decode: impl FnMut(&[u8]) -> Decode<T, E>) -> Option<Result<T, E>> {
        mailbus_lines::next_item(&mut self.input, decode)
    }

    /// Reads what the peer sent next into `input`, straight into its spare room: no buffer lives in the
    /// waiting future, and a connection whose peer sends command lines waits with [`SMALL_READ`] of room,
    /// one streaming a body reads [`READ_CHUNK`]s.
    ///
    /// With compression on, the bytes read are inflated into `input`, at most a read's room at a time
    /// (see [`crate::deflate`]); what is left compressed is inflated by the next call before it reads.
    pub async fn read_more(&mut self, timeout: Duration, shutdown: &CancellationToken) -> Result<(), ReadError> {
        let room = if self.last_read >= SMALL_READ { READ_CHUNK } else { SMALL_READ };
        if let Some(deflate) = self.deflate.as_deref_mut() {
            return read_deflated(&mut self.io, deflate, &mut self.input, &mut self.last_read, room, timeout, shutdown)
                .await;
        }
        self.input.reserve(room);
        let read = tokio::select! {
            read = tokio::time::timeout(timeout, self.io.read_buf(&mut self.input)) => read,
            _ = shutdown.cancelled() => return Err(ReadError::Shutdown),
        };
        match read {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(error)) => Err(ReadError::Io(error)),
            Ok(Ok(0)) => Err(ReadError::Eof),
            Ok(Ok(n)) => {
                self.last_read = n;
                Ok(())
            }
        }
    }

    /// [`Self::read_more`] for a session waiting on its client's next command: an idle timeout or a
    /// shutdown first sends the line `farewell` gives for it (SMTP's 421, POP3's -ERR), then is returned.
    pub async fn read_or_farewell(
        &mut self,
        timeout: Duration,
        shutdown: &CancellationToken,
        farewell: impl FnOnce(&ReadError) -> Option<Vec<u8>>,
    ) -> Result<(), ReadError> {
        let read = self.read_more(timeout, shutdown).await;
        if let Err(error) = &read
            && let Some(line) = farewell(error)
        {
            self.last_words(&line).await;
        }
        read
    }

    /// Writes out everything in `output`. A peer that stops reading gets [`WRITE_TIMEOUT`], not forever:
    /// it would hold a connection slot and hold up shutdown.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let write = async {
            if let Some(deflate) = self.deflate.as_deref_mut() {
                if !self.output.is_empty() {
                    write_deflated(&mut self.io, deflate, &self.output).await?;
                    self.output.clear();
                }
            } else if !self.output.is_empty() {
                self.io.write_all(&self.output).await?;
                self.output.clear();
            }
            self.io.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stopped reading")))
    }

    /// Flushes once the pending output passes [`OUTPUT_HIGH_WATER`], so that a client pipelining many
    /// large responses (POP3 TOP, long listings) cannot make us buffer them all.
    pub async fn flush_if_large(&mut self) -> std::io::Result<()> {
        if self.output.len() >= OUTPUT_HIGH_WATER { self.flush().await } else { Ok(()) }
    }

    /// Turns compression on both ways (IMAP COMPRESS=DEFLATE, RFC 4978): from here on, what is read is
    /// inflated and what is written deflated. The caller has sent the go-ahead already (plain) and its
    /// input holds nothing received after the command (the peer waits for the answer before compressing).
    pub fn start_deflate(&mut self) {
        if self.deflate.is_none() {
            self.deflate = Some(Box::new(Deflate::new()));
        }
    }

    /// Whether [`Self::start_deflate`] was called.
    pub fn is_deflating(&self) -> bool {
        self.deflate.is_some()
    }

    pub fn io_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// Sends a last line before closing; a write error changes nothing then.
    pub async fn last_words(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
        let _ = self.flush().await;
    }
}

/// [`Wire::read_more`] with compression on: inflate what is waiting; read compressed bytes only when
/// nothing is.
async fn read_deflated<IO: AsyncRead + Unpin>(
    io: &mut IO,
    deflate: &mut Deflate,
    input: &mut Vec<u8>,
    last_read: &mut usize,
    room: usize,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), ReadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match deflate.inflate(input, room) {
            Err(_) => return Err(ReadError::Corrupt),
            Ok(0) => {}
            Ok(n) => {
                *last_read = n;
                return Ok(());
            }
        }
        deflate.raw.reserve(room);
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, io.read_buf(&mut deflate.raw)) => read,
            _ = shutdown.cancelled() => return Err(ReadError::Shutdown),
        };
        match read {
            Err(_) => return Err(ReadError::Timeout),
            Ok(Err(error)) => return Err(ReadError::Io(error)),
            Ok(Ok(0)) => return Err(ReadError::Eof),
            Ok(Ok(_)) => {}
        }
    }
}

/// [`Wire::flush`]'s write with compression on: `plain` deflated and sync-flushed, written a chunk at a
/// time.
async fn write_deflated<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    deflate: &mut Deflate,
    plain: &[u8],
) -> std::io::Result<()> {
    let (mut taken, mut chunk) = (0, Vec::new());
    loop {
        let done = deflate.deflate_step(plain, &mut taken, &mut chunk);
        io.write_all(&chunk).await?;
        if done {
            return Ok(());
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Wire<MaybeTls<IO>> {
    /// STARTTLS (RFC 3207) and STLS (RFC 2595) alike: the go-ahead goes out in the clear, anything the
    /// client pipelined after the command is dropped unread (CVE-2011-0411: nothing sent in the clear may
    /// be read as if it came over TLS), then the handshake, bounded by `timeout`. The caller starts a fresh
    /// decoder and tells its session.
    pub async fn start_tls(
        &mut self,
        go_ahead: &[u8],
        tls: &ServerTls,
        timeout: Duration,
    ) -> Result<TlsFacts, StartTlsError> {
        self.output.extend_from_slice(go_ahead);
        self.flush().await.map_err(StartTlsError::Write)?;
        self.input.clear();
        match tokio::time::timeout(timeout, self.io.upgrade(tls)).await {
            Ok(Ok(facts)) => Ok(facts),
            Ok(Err(error)) => Err(StartTlsError::Handshake(error)),
            Err(_) => Err(StartTlsError::Handshake(std::io::ErrorKind::TimedOut.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_clock_restarts_for_a_new_command_only_and_the_login_deadline_bounds_until_login() {
        let start = tokio::time::Instant::now();
        let idle = Duration::from_secs(600);
        let mut clock = SessionClock::new(start + Duration::from_secs(60), idle);
        assert_eq!(clock.next_read(start, false, false), (Duration::from_secs(60), true));
        // Logged in: the autologout timer, started again by a new command.
        let later = start + Duration::from_secs(100);
        assert_eq!(clock.next_read(later, false, true), (idle, false));
        // A partial command gets only what is left of its timer.
        let partial = later + Duration::from_secs(500);
        assert_eq!(clock.next_read(partial, true, true), (Duration::from_secs(100), false));
        // A login deadline past the command's timer is not the bound.
        let mut late_login = SessionClock::new(start + Duration::from_secs(3600), idle);
        assert_eq!(late_login.next_read(start, false, false), (idle, false));
    }

    fn peer() -> std::net::SocketAddr {
        "192.0.2.1:1234".parse().unwrap()
    }

    #[tokio::test]
    async fn open_leaves_a_plain_listener_plain() {
        let (_client, server) = tokio::io::duplex(1024);
        let (stream, facts) = open(server, None, Duration::from_millis(1), peer()).await.expect("plain");
        assert!(!stream.is_tls());
        assert!(facts.is_none());
    }

    #[tokio::test]
    async fn open_shakes_hands_first_on_an_implicit_tls_listener_and_lets_a_silent_peer_go() {
        let pem = mailbus_tls::self_signed(&["mx.test".to_owned()]).unwrap();
        let tls = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        // A client that completes the handshake.
        let (client, server) = tokio::io::duplex(64 * 1024);
        let connector = tokio_rustls::TlsConnector::from(mailbus_tls::client_config_trusting(&pem.cert_pem).unwrap());
        let name = rustls_pki_types::ServerName::try_from("mx.test").unwrap();
        // The client keeps its end open (the task returns it): a closed peer would fail the server's
        // last write of the handshake (TLS 1.3's session tickets).
        let handshake = tokio::spawn(async move { connector.connect(name, client).await });
        let (stream, facts) = open(server, Some(&tls), Duration::from_secs(10), peer()).await.expect("TLS");
        assert!(stream.is_tls());
        assert!(facts.is_some());
        let _client = handshake.await.unwrap().expect("the client's side of the handshake");
        // A peer that connects and says nothing is let go when the handshake timeout passes.
        let (_silent, server) = tokio::io::duplex(1024);
        assert!(open(server, Some(&tls), Duration::from_millis(50), peer()).await.is_none());
        // And one that speaks plaintext to a TLS port fails the handshake.
        let (mut plain, server) = tokio::io::duplex(1024);
        plain.write_all(b"EHLO client.test\r\n").await.unwrap();
        assert!(open(server, Some(&tls), Duration::from_secs(10), peer()).await.is_none());
    }

    fn farewell(error: &ReadError) -> Option<Vec<u8>> {
        match error {
            ReadError::Timeout => Some(b"idle\r\n".to_vec()),
            ReadError::Shutdown => Some(b"bye\r\n".to_vec()),
            _ => None,
        }
    }

    /// The peer's view after `read_or_farewell` returned `expected`: everything the server wrote, to EOF.
    async fn farewell_seen(shutdown: CancellationToken, peer_closes: bool) -> (ReadError, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wire = Wire::new(server);
        if peer_closes {
            client.shutdown().await.unwrap();
        }
        let error = wire.read_or_farewell(Duration::from_millis(100), &shutdown, farewell).await.unwrap_err();
        drop(wire);
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        (error, seen)
    }

    #[tokio::test]
    async fn a_silent_peer_or_a_shutdown_gets_the_farewell_and_a_closed_peer_nothing() {
        let (error, seen) = farewell_seen(CancellationToken::new(), false).await;
        assert!(matches!(error, ReadError::Timeout), "{error:?}");
        assert_eq!(seen, b"idle\r\n");

        let stopped = CancellationToken::new();
        stopped.cancel();
        let (error, seen) = farewell_seen(stopped, false).await;
        assert!(matches!(error, ReadError::Shutdown), "{error:?}");
        assert_eq!(seen, b"bye\r\n");

        let (error, seen) = farewell_seen(CancellationToken::new(), true).await;
        assert!(matches!(error, ReadError::Eof), "{error:?}");
        assert_eq!(seen, b"");
    }

    #[tokio::test]
    async fn a_peer_sending_lines_leaves_little_room_and_a_body_is_read_in_chunks() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut wire = Wire::new(server);
        let forever = Duration::from_secs(60);
        client.write_all(b"a1 NOOP\r\n").await.unwrap();
        wire.read_more(forever, &CancellationToken::new()).await.unwrap();
        assert_eq!(wire.input, b"a1 NOOP\r\n");
        assert!(wire.input.capacity() <= SMALL_READ, "{}", wire.input.capacity());
        wire.input.clear();
        let body = vec![b'x'; 20_000];
        client.write_all(&body).await.unwrap();
        let mut reads = 0;
        while wire.input.len() < body.len() {
            wire.read_more(forever, &CancellationToken::new()).await.unwrap();
            reads += 1;
        }
        assert_eq!(wire.input, body);
        // One small read, then chunks: not one read per SMALL_READ bytes.
        assert!(reads <= 1 + body.len().div_ceil(READ_CHUNK), "{reads} reads");
    }

    fn raw_deflate(plain: &[u8]) -> Vec<u8> {
        let mut deflater = flate2::Compress::new(flate2::Compression::fast(), false);
        let mut out = Vec::with_capacity(plain.len() + 1024);
        deflater.compress_vec(plain, &mut out, flate2::FlushCompress::Sync).unwrap();
        out
    }

    #[tokio::test]
    async fn with_deflate_on_input_is_inflated_and_output_deflated_per_flush() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut wire = Wire::new(server);
        assert!(!wire.is_deflating());
        wire.start_deflate();
        assert!(wire.is_deflating());
        let forever = Duration::from_secs(60);
        client.write_all(&raw_deflate(b"a2 NOOP\r\n")).await.unwrap();
        wire.read_more(forever, &CancellationToken::new()).await.unwrap();
        assert_eq!(wire.input, b"a2 NOOP\r\n");
        wire.output.extend_from_slice(b"a2 OK NOOP completed\r\n");
        wire.flush().await.unwrap();
        assert!(wire.output.is_empty());
        // What went out is one sync-flushed raw DEFLATE burst, readable at once.
        let mut seen = vec![0; 1024];
        let n = client.read(&mut seen).await.unwrap();
        assert!(seen[..n].ends_with(&[0, 0, 0xff, 0xff]), "{:x?}", &seen[..n]);
        let mut inflater = flate2::Decompress::new(false);
        let mut plain = Vec::with_capacity(1024);
        inflater.decompress_vec(&seen[..n], &mut plain, flate2::FlushDecompress::Sync).unwrap();
        assert_eq!(plain, b"a2 OK NOOP completed\r\n");
    }

    #[tokio::test]
    async fn a_compressed_bomb_is_taken_a_chunk_at_a_time_and_garbage_is_corrupt() {
        let (mut client, server) = tokio::io::duplex(1024 * 1024);
        let mut wire = Wire::new(server);
        wire.start_deflate();
        let forever = Duration::from_secs(60);
        let bomb = raw_deflate(&vec![b'a'; 16 * 1024 * 1024]);
        client.write_all(&bomb).await.unwrap();
        wire.read_more(forever, &CancellationToken::new()).await.unwrap();
        assert!(!wire.input.is_empty() && wire.input.len() <= READ_CHUNK, "{}", wire.input.len());
        wire.input.clear();
        wire.read_more(forever, &CancellationToken::new()).await.unwrap();
        assert!(!wire.input.is_empty() && wire.input.len() <= READ_CHUNK, "{}", wire.input.len());

        let (mut client, server) = tokio::io::duplex(1024);
        let mut wire = Wire::new(server);
        wire.start_deflate();
        client.write_all(&[0xff; 32]).await.unwrap();
        let error = wire.read_more(forever, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(error, ReadError::Corrupt), "{error:?}");
    }
}
