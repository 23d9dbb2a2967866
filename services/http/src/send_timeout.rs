//! A connection whose client stops reading is closed after `SEND_TIMEOUT` without progress, as nginx's
//! `send_timeout` closes one: between two writes that complete, not over the whole response. Without it,
//! a download (or any long response) that its client never reads held its account's download slot, its
//! blob in the mailbox role, and the connection, for as long as the client kept the socket open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};

/// How long one write may wait for the client to take bytes (nginx's default `send_timeout`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SendTimeout<IO> {
    io: IO,
    limit: Duration,
    /// Running while a write waits; dropped when one completes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> SendTimeout<IO> {
    pub fn new(io: IO, limit: Duration) -> Self {
        SendTimeout { io, limit, stalled: None }
    }

    /// A write that is still pending: pending too, until the limit has passed since the first.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.waiting(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<IO: Read + Unpin> Read for SendTimeout<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: Write + Unpin> Write for SendTimeout<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.progress(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LIMIT: Duration = Duration::from_millis(300);

    // The clock is paused and moves only when every task waits, so the timings are exact and instant.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_off_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let mut writer = TokioIo::new(SendTimeout::new(TokioIo::new(ours), LIMIT));
        let started = tokio::time::Instant::now();
        let written = tokio::time::timeout(LIMIT * 10, writer.write_all(&[b'x'; 1 << 20])).await;
        let error = written.expect("cut off, not left waiting").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LIMIT && started.elapsed() < LIMIT * 2, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_gets_everything() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut writer = TokioIo::new(SendTimeout::new(TokioIo::new(ours), LIMIT));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 4096];
            loop {
                // Each pause is under the limit, all of them together far over it.
                tokio::time::sleep(LIMIT / 3).await;
                match theirs.read(&mut chunk).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        writer.write_all(&[b'x'; 48 * 1024]).await.unwrap();
        writer.shutdown().await.unwrap();
        let read = tokio::time::timeout(LIMIT * 40, reader).await.expect("the reader is done");
        assert_eq!(read.unwrap(), 48 * 1024);
    }
}
