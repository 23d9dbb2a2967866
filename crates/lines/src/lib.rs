//! Sans-I/O line framing shared by SMTP's and POP3's command lines: the [`Decode`] outcome every codec
//! returns, and [`LineFramer`], which finds complete lines under a length limit and reports an over-long
//! line once, then skips the rest of it. (IMAP frames with imap-next, which follows its literals.)
//!
//! No I/O and no dependencies: the protocol crates parse the lines, the connection tasks move the bytes.

/// The outcome of decoding from a byte buffer: enough bytes for an item, not enough yet, or bytes that
/// can never become a valid item. `consumed` says how many input bytes the caller may drop.
#[derive(Debug, PartialEq, Eq)]
pub enum Decode<T, E> {
    Incomplete,
    Item {
        item: T,
        consumed: usize,
    },
    Invalid {
        error: E,
        consumed: usize,
    },
    /// Bytes to drop with nothing to report, such as the tail of a line whose error was already reported.
    Skip {
        consumed: usize,
    },
}

impl<T, E> Decode<T, E> {
    /// Parses a decoded item further; a parse error becomes `Invalid` over the same bytes.
    pub fn and_then<U, F>(self, parse: impl FnOnce(T) -> Result<U, F>, error: impl FnOnce(E) -> F) -> Decode<U, F> {
        match self {
            Decode::Incomplete => Decode::Incomplete,
            Decode::Skip { consumed } => Decode::Skip { consumed },
            Decode::Invalid { error: e, consumed } => Decode::Invalid { error: error(e), consumed },
            Decode::Item { item, consumed } => match parse(item) {
                Ok(item) => Decode::Item { item, consumed },
                Err(error) => Decode::Invalid { error, consumed },
            },
        }
    }
}

/// The next item or error `decode` finds at the front of `buf`, with the bytes it used (and any it said to
/// skip) drained from `buf`; `None` when more bytes are needed.
pub fn next_item<T, E>(buf: &mut Vec<u8>, mut decode: impl FnMut(&[u8]) -> Decode<T, E>) -> Option<Result<T, E>> {
    loop {
        let (item, consumed) = match decode(buf) {
            Decode::Incomplete => return None,
            Decode::Skip { consumed } => {
                buf.drain(..consumed);
                continue;
            }
            Decode::Item { item, consumed } => (Ok(item), consumed),
            Decode::Invalid { error, consumed } => (Err(error), consumed),
        };
        buf.drain(..consumed);
        return Some(item);
    }
}

/// A line longer than the protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Finds lines. It keeps one bit of state: whether it is skipping the tail of an over-long line.
#[derive(Debug, Default)]
pub struct LineFramer {
    discarding: bool,
}

impl LineFramer {
    /// The next complete line of `input`, LF included, if it is at most `max` octets long. A longer line
    /// is reported as soon as `max` octets have arrived without an LF, so a client cannot make us buffer
    /// without bound; its remaining bytes are then skipped up to the next LF.
    pub fn next<'a>(&mut self, input: &'a [u8], max: usize) -> Decode<&'a [u8], LineTooLong> {
        if input.is_empty() {
            return Decode::Incomplete;
        }
        let lf = input.iter().position(|&b| b == b'\n');
        if self.discarding {
            return match lf {
                Some(pos) => {
                    self.discarding = false;
                    Decode::Skip { consumed: pos + 1 }
                }
                None => Decode::Skip { consumed: input.len() },
            };
        }
        match lf {
            Some(pos) if pos < max => Decode::Item { item: &input[..=pos], consumed: pos + 1 },
            Some(pos) => Decode::Invalid { error: LineTooLong, consumed: pos + 1 },
            None if input.len() >= max => {
                self.discarding = true;
                Decode::Invalid { error: LineTooLong, consumed: input.len() }
            }
            None => Decode::Incomplete,
        }
    }
}

/// For codec tests: feeds `input` to a fresh decoder in two parts, split at every position (the way a
/// slow or hostile client might send it), and returns, per split, the items and errors decoded.
pub fn decode_at_every_split<D: Default, T, E>(
    input: &[u8],
    mut decode: impl FnMut(&mut D, &[u8]) -> Decode<T, E>,
) -> Vec<Vec<Result<T, E>>> {
    (0..=input.len())
        .map(|split| {
            let mut decoder = D::default();
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            for part in [&input[..split], &input[split..]] {
                buf.extend_from_slice(part);
                while let Some(decoded) = next_item(&mut buf, |bytes| decode(&mut decoder, bytes)) {
                    out.push(decoded);
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_split_everywhere(input: &[u8], max: usize) -> Vec<Vec<Result<Vec<u8>, LineTooLong>>> {
        decode_at_every_split(input, |framer: &mut LineFramer, buf| {
            framer.next(buf, max).and_then(|l| Ok(l.to_vec()), |e| e)
        })
    }

    #[test]
    fn lines_come_out_whole_at_every_split() {
        for seen in frame_split_everywhere(b"ONE\r\nTWO\nTHREE\r\n", 10) {
            assert_eq!(seen, vec![Ok(b"ONE\r\n".to_vec()), Ok(b"TWO\n".to_vec()), Ok(b"THREE\r\n".to_vec())]);
        }
    }

    #[test]
    fn an_over_long_line_is_one_error_and_the_next_line_survives() {
        let mut input = vec![b'x'; 50];
        input.extend_from_slice(b"\r\nOK\r\n");
        for seen in frame_split_everywhere(&input, 10) {
            assert_eq!(seen, vec![Err(LineTooLong), Ok(b"OK\r\n".to_vec())]);
        }
    }

    #[test]
    fn the_limit_counts_the_line_ending() {
        let mut framer = LineFramer::default();
        assert!(matches!(framer.next(b"12345678\r\n", 10), Decode::Item { consumed: 10, .. }));
        assert!(matches!(framer.next(b"123456789\r\n", 10), Decode::Invalid { error: LineTooLong, consumed: 11 }));
    }

    #[test]
    fn and_then_keeps_the_consumed_count() {
        let decoded: Decode<&[u8], LineTooLong> = Decode::Item { item: b"42\n", consumed: 3 };
        let parsed = decoded
            .and_then(|line| std::str::from_utf8(&line[..2]).unwrap().parse::<u8>().map_err(|_| "nan"), |_| "long");
        assert_eq!(parsed, Decode::Item { item: 42, consumed: 3 });
        let too_long: Decode<&[u8], LineTooLong> = Decode::Invalid { error: LineTooLong, consumed: 7 };
        assert_eq!(
            too_long.and_then(|_| Ok::<u8, &str>(0), |_| "long"),
            Decode::Invalid { error: "long", consumed: 7 }
        );
    }
}
