//! RFC 3516 §4.2: a partial BINARY fetch is answered as `BINARY[1]<0> ~{7}`, naming the origin it
//! started at, as BODY[]<0> is. imap-types' `MessageDataItem::Binary` has no origin, so it is written into
//! the FETCH line imap-codec encoded, after the section of each BINARY item that had one.

/// Writes `<origin>` after the section of the n-th `BINARY[...]` item of `line` (an encoded FETCH
/// response), for each `origins[n]` that is `Some`. Quoted strings and literals are stepped over, so text
/// inside a message's envelope or octets that looks like an item is left alone.
pub fn name_origins(line: Vec<u8>, origins: &[Option<u32>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 8 * origins.len());
    let mut origins = origins.iter();
    let mut i = 0;
    while i < line.len() {
        let byte = line[i];
        if byte == b'"' {
            let end = quoted_end(&line, i);
            out.extend_from_slice(&line[i..end]);
            i = end;
        } else if byte == b'{'
            && let Some((data_start, length)) = literal_at(&line, i)
        {
            let end = data_start.saturating_add(length).min(line.len());
            out.extend_from_slice(&line[i..end]);
            i = end;
        } else if line[i..].starts_with(b"BINARY[") && i > 0 && matches!(line[i - 1], b' ' | b'(') {
            let Some(close) = line[i..].iter().position(|&b| b == b']').map(|p| i + p) else { break };
            out.extend_from_slice(&line[i..=close]);
            if let Some(Some(origin)) = origins.next() {
                out.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            i = close + 1;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    out.extend_from_slice(&line[i.min(line.len())..]);
    out
}

/// One past the closing quote of the quoted string opening at `start` (or the end of the line).
fn quoted_end(line: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    line.len()
}

/// A literal's `{n}` (or `{n+}`) and CRLF at `start`: where its octets begin, and how many there are.
fn literal_at(line: &[u8], start: usize) -> Option<(usize, usize)> {
    let close = line[start..].iter().position(|&b| b == b'}')? + start;
    let digits = line[start + 1..close].strip_suffix(b"+").unwrap_or(&line[start + 1..close]);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || !line[close + 1..].starts_with(b"\r\n") {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((close + 3, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(line: &str, origins: &[Option<u32>]) -> String {
        String::from_utf8(name_origins(line.as_bytes().to_vec(), origins)).unwrap()
    }

    #[test]
    fn a_partial_binary_item_names_its_origin() {
        assert_eq!(
            named("* 1 FETCH (BINARY[1] ~{7}\r\nabcdefg)\r\n", &[Some(0)]),
            "* 1 FETCH (BINARY[1]<0> ~{7}\r\nabcdefg)\r\n"
        );
        assert_eq!(
            named("* 1 FETCH (UID 4 BINARY[1.2] {3}\r\nxyz BINARY[] ~{2}\r\nab)\r\n", &[Some(5), None]),
            "* 1 FETCH (UID 4 BINARY[1.2]<5> {3}\r\nxyz BINARY[] ~{2}\r\nab)\r\n"
        );
    }

    #[test]
    fn look_alikes_in_literals_quoted_strings_and_binary_size_are_left_alone() {
        let line = "* 1 FETCH (ENVELOPE (\"x\" \"a BINARY[1] b\") BINARY.SIZE[1] 9 BODY[] {12}\r\n BINARY[1] x BINARY[1] ~{1}\r\nq)\r\n";
        let expected = "* 1 FETCH (ENVELOPE (\"x\" \"a BINARY[1] b\") BINARY.SIZE[1] 9 BODY[] {12}\r\n BINARY[1] x BINARY[1]<3> ~{1}\r\nq)\r\n";
        assert_eq!(named(line, &[Some(3)]), expected);
    }
}
