//! The message body: DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), and the enqueue result. The session
//! decides what becomes of a body and hands out the readers that transform it; the connection keeps the
//! octets they hand out, so that the session's states stay small whatever the size of the message.

use std::mem;

use super::{Action, DataOutcome, Helo, MailFrom, Message, Recipient, Session, State, bad_sequence, too_large};
use crate::data::{BodyFilter, ChunkReader, DataProgress, DataReader, LongLines};
use crate::reply::{Enhanced, Reply};

/// A BDAT chunk the connection is reading.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingChunk {
    size: usize,
    last: bool,
}

impl Session {
    pub(super) fn data(&mut self) -> Action {
        match &self.state {
            State::Rcpt { .. } => {
                Action::ReceiveData(Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()]))
            }
            // RFC 5321 §3.3: with no valid recipient, DATA gets 554 (or 503).
            State::Mail { .. } => Action::Reply(no_valid_recipients()),
            // RFC 3030 §2: DATA and BDAT do not mix in one transaction.
            State::Chunking { .. } | State::ChunkingOverSize { .. } => {
                Action::Reply(bad_sequence("DATA is not allowed after BDAT"))
            }
            _ => Action::Reply(bad_sequence("need RCPT command")),
        }
    }

    /// The reader for the body that follows a 354, with the size limit and the line policies.
    pub fn data_reader(&self) -> DataReader {
        DataReader::new(self.config.max_message_size, self.config.long_lines, self.config.bare_lf)
    }

    /// Takes the outcome of reading the body. Either way the transaction is over.
    pub fn data_received(&mut self, progress: DataProgress) -> DataOutcome {
        let (helo, from, recipients) = match mem::take(&mut self.state) {
            State::Rcpt { helo, from, recipients } => (helo, from, recipients),
            other => {
                self.state = other;
                return DataOutcome::Reply(self.note(bad_sequence("need RCPT command")));
            }
        };
        self.state = State::Greeted { helo: helo.clone() };
        if progress == DataProgress::Complete {
            return DataOutcome::Enqueue(self.message(helo, from, recipients));
        }
        DataOutcome::Reply(self.note(refusal(progress)))
    }

    fn message(&self, helo: Helo, from: MailFrom, recipients: Vec<Recipient>) -> Message {
        Message { helo, from, recipients, tls: self.tls.clone(), authenticated: self.user.clone() }
    }

    /// Every BDAT gets [`Action::ReceiveChunk`], whatever the state: the chunk follows the command line
    /// unasked, so it must be read before anything can be said about it.
    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Action {
        self.chunk = Some(PendingChunk { size, last });
        Action::ReceiveChunk { size, last }
    }

    /// The reader for the chunk that [`Action::ReceiveChunk`] announced. It keeps the chunk if the
    /// transaction can take it, and otherwise drops it: when there is no transaction, or when the announced
    /// size cannot fit, whatever the chunk holds.
    pub fn chunk_reader(&self) -> ChunkReader {
        let Some(pending) = self.chunk else { return ChunkReader::new(0, false, None) };
        let filter = match &self.state {
            // Without BINARYMIME a BDAT body is still text with CRLF lines (RFC 3030 §3): its line endings
            // are DATA's, so that every stored message has one convention. Its lines may be long.
            State::Rcpt { .. } => {
                Some(BodyFilter::new(self.config.max_message_size, LongLines::Accept, self.config.bare_lf))
            }
            State::Chunking { filter, .. } => Some(*filter),
            _ => None,
        };
        let fits = |filter: &BodyFilter| filter.size().saturating_add(pending.size) <= self.config.max_message_size;
        ChunkReader::new(pending.size, pending.last, filter.filter(fits))
    }

    /// A BDAT transaction is under way: the chunks so far belong to a message that LAST will finish. Once
    /// this is false, the connection can drop whatever it kept of them.
    pub fn chunking(&self) -> bool {
        matches!(self.state, State::Chunking { .. })
    }

    /// Takes the reader of a chunk that [`Action::ReceiveChunk`] asked for, once it has read the whole
    /// chunk. A chunk that is not the last is answered `250 2.0.0 <n> octets received`; the last ends the
    /// transaction with the message to enqueue, or with the error. Once the chunks pass the size limit,
    /// each further one is read, dropped and answered 552, until LAST (RFC 3030 §4: the client should
    /// stop, but pipelined chunks may still come).
    pub fn chunk_received(&mut self, reader: ChunkReader) -> DataOutcome {
        let Some(pending) = self.chunk.take() else {
            return DataOutcome::Reply(self.note(bad_sequence("no BDAT command")));
        };
        let outcome = match mem::take(&mut self.state) {
            State::Rcpt { helo, from, recipients } => {
                let message = self.message(helo, from, recipients);
                self.add_chunk(message, pending, reader)
            }
            State::Chunking { message, .. } => self.add_chunk(message, pending, reader),
            State::ChunkingOverSize { helo } => self.over_size(helo, pending),
            other => {
                let reply = match other {
                    State::Mail { .. } => no_valid_recipients(),
                    _ => bad_sequence("need RCPT command"),
                };
                self.state = other;
                DataOutcome::Reply(reply)
            }
        };
        match outcome {
            DataOutcome::Reply(reply) => DataOutcome::Reply(self.note(reply)),
            enqueue => enqueue,
        }
    }

    fn add_chunk(&mut self, message: Message, pending: PendingChunk, reader: ChunkReader) -> DataOutcome {
        let Some(filter) = reader.into_filter() else { return self.over_size(message.helo, pending) };
        let progress = filter.outcome();
        if progress == DataProgress::TooLarge {
            return self.over_size(message.helo, pending);
        }
        if !pending.last {
            // A body already refused by a line policy is still read to LAST, and refused there.
            self.state = State::Chunking { message, filter };
            return DataOutcome::Reply(Reply::new(250, Enhanced(2, 0, 0), format!("{} octets received", pending.size)));
        }
        self.state = State::Greeted { helo: message.helo.clone() };
        match progress {
            DataProgress::Complete => DataOutcome::Enqueue(message),
            refused => DataOutcome::Reply(refusal(refused)),
        }
    }

    fn over_size(&mut self, helo: Helo, pending: PendingChunk) -> DataOutcome {
        self.state = if pending.last { State::Greeted { helo } } else { State::ChunkingOverSize { helo } };
        DataOutcome::Reply(too_large())
    }

    /// RFC 5321 §4.2.5: 250 only once the message is safe.
    pub fn queued(&mut self, queue_id: &str) -> Reply {
        Reply::ok(format!("Ok: queued as {queue_id}"))
    }

    /// The message could not be made durable; the client keeps it and tries again.
    pub fn not_queued(&mut self) -> Reply {
        self.note(Reply::new(451, Enhanced(4, 3, 0), "Queue unavailable, try again later"))
    }
}

/// The reply to a body that is not to be enqueued.
fn refusal(progress: DataProgress) -> Reply {
    match progress {
        DataProgress::TooLarge => too_large(),
        // RFC 5321 §4.5.3.1.6 and its 500 "Line too long".
        DataProgress::LineTooLong => Reply::new(500, Enhanced(5, 5, 2), "Message has a line longer than 1000 octets"),
        DataProgress::BareLineEnding => {
            Reply::new(554, Enhanced(5, 5, 2), "Bare CR or LF line endings are not allowed")
        }
        DataProgress::Incomplete | DataProgress::Complete => Reply::new(451, Enhanced(4, 3, 0), "Incomplete message"),
    }
}

fn no_valid_recipients() -> Reply {
    Reply::new(554, Enhanced(5, 5, 1), "No valid recipients")
}
