//! RFC 4978 COMPRESS=DEFLATE: the session decides, the connection compresses. After the tagged OK (sent
//! uncompressed) both directions are raw DEFLATE streams; the wire does that (`mailbus_acceptor::deflate`)
//! once the session returns [`Step::Compress`], and then calls [`Session::compression_started`].

use imap_types::extensions::compress::CompressionAlgorithm;

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    /// COMPRESS, valid once logged in (as Dovecot: compression before the login would let anyone make
    /// the server hold a compressor). A second one is `NO [COMPRESSIONACTIVE]` (RFC 4978 §3); an algorithm
    /// other than DEFLATE never parses, so it is the BAD of a malformed command.
    pub(super) async fn compress(
        &mut self,
        tag: Tag<'static>,
        algorithm: CompressionAlgorithm,
    ) -> Result<Status<'static>, Flow> {
        if self.compressed {
            return Ok(no(tag, Some(Code::CompressionActive), "DEFLATE is already active"));
        }
        if !matches!(algorithm, CompressionAlgorithm::Deflate) {
            return Ok(bad(Some(tag), "the only compression offered is DEFLATE"));
        }
        self.server.enqueue_status(ok(tag, None, "DEFLATE active"));
        // The OK goes out uncompressed; what follows it, compressed.
        self.drain().await;
        self.compressed = true;
        Err(Flow::Compress)
    }

    /// The wire compresses both ways now (after [`Step::Compress`]): a fresh framer, since anything it
    /// still held arrived before the client saw the OK, and RFC 4978 §3 has the client wait for the
    /// answer before it sends again (the connection drops such bytes unread, as after STARTTLS).
    pub fn compression_started(&mut self) {
        self.server = new_server(&self.config, None, self.framing);
        self.pending.clear();
        self.meter = Default::default();
        self.fed = 0;
    }
}
