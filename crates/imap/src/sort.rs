//! RFC 5256 SORT and RFC 5957 SORT=DISPLAY as a pure computation: messages (with the sort keys the store
//! read for them) and the client's criteria in, message numbers in order out. Strings compare under
//! `i;ascii-casemap`, the default collation (RFC 5256 §3); messages equal under every criterion keep
//! mailbox order, whatever REVERSE says.

use std::cmp::Ordering;

use imap_types::extensions::sort::{SortCriterion, SortKey};
use mailbus_proto::v1 as pb;

use crate::context::{self, ReturnOptions};

/// A message SORT orders: its number (UID or sequence number, as the command asked) and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub number: u32,
    pub keys: pb::Sorting,
}

/// The numbers of `messages` ordered by `criteria`, ties in number order (which is mailbox order).
pub fn sort(mut messages: Vec<Message>, criteria: &[SortCriterion]) -> Vec<u32> {
    messages.sort_by(|a, b| {
        criteria
            .iter()
            .map(|c| {
                let order = compare(&a.keys, &b.keys, &c.key);
                if c.reverse { order.reverse() } else { order }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.number.cmp(&b.number))
    });
    messages.into_iter().map(|m| m.number).collect()
}

fn compare(a: &pb::Sorting, b: &pb::Sorting, key: &SortKey) -> Ordering {
    match key {
        SortKey::Arrival => a.internal_date_unix.cmp(&b.internal_date_unix),
        SortKey::Date => a.sent_unix.cmp(&b.sent_unix),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => casemap(&a.base_subject, &b.base_subject),
        SortKey::From => casemap(&a.from_mailbox, &b.from_mailbox),
        SortKey::To => casemap(&a.to_mailbox, &b.to_mailbox),
        SortKey::Cc => casemap(&a.cc_mailbox, &b.cc_mailbox),
        SortKey::DisplayFrom => casemap(&a.display_from, &b.display_from),
        SortKey::DisplayTo => casemap(&a.display_to, &b.display_to),
    }
}

/// `i;ascii-casemap` (RFC 4790 §9.2): octets compared with ASCII letters upper-cased.
fn casemap(a: &str, b: &str) -> Ordering {
    a.bytes().map(|c| c.to_ascii_uppercase()).cmp(b.bytes().map(|c| c.to_ascii_uppercase()))
}

/// `* SORT 3 1 2` (RFC 5256 §4), with RFC 7162's `(MODSEQ 12)` when the criteria had MODSEQ and
/// something matched.
pub fn render(numbers: &[u32], modseq: Option<u64>) -> String {
    let mut out = String::from("* SORT");
    for number in numbers {
        out.push(' ');
        out.push_str(&number.to_string());
    }
    if let Some(modseq) = modseq.filter(|_| !numbers.is_empty()) {
        out.push_str(&format!(" (MODSEQ {modseq})"));
    }
    out.push_str("\r\n");
    out
}

/// RFC 5267 §3.2 ESORT's `* ESEARCH` line for `sorted` (numbers in sort order): MIN and MAX are the first
/// and last in that order, ALL and PARTIAL keep it (ranges only where numbers ascend one by one), and no
/// options mean ALL; `modseq` is the highest of what is returned (RFC 7162 §3.1.5).
pub fn render_esearch(tag: &str, by_uid: bool, options: &ReturnOptions, sorted: &[u32], modseq: Option<u64>) -> String {
    let wants = |o: &str| options.has(o);
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if by_uid {
        line.push_str(" UID");
    }
    if wants("MIN")
        && let Some(min) = sorted.first()
    {
        line.push_str(&format!(" MIN {min}"));
    }
    if wants("MAX")
        && let Some(max) = sorted.last()
    {
        line.push_str(&format!(" MAX {max}"));
    }
    if options.all() && !sorted.is_empty() {
        line.push_str(" ALL ");
        line.push_str(&ordered_set(sorted));
    }
    if wants("COUNT") {
        line.push_str(&format!(" COUNT {}", sorted.len()));
    }
    if let Some(partial) = &options.partial {
        line.push_str(&context::partial_data(partial, &ordered_set(&sorted[partial.indexes(sorted.len())])));
    }
    if let Some(modseq) = modseq {
        line.push_str(&format!(" MODSEQ {modseq}"));
    }
    line.push_str("\r\n");
    line
}

/// A sequence-set that keeps the order of `numbers`: `2:4,1`.
fn ordered_set(numbers: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(n) => *end = n,
            _ => runs.push((n, n)),
        }
    }
    let text: Vec<String> =
        runs.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}:{b}") }).collect();
    text.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(number: u32, keys: pb::Sorting) -> Message {
        Message { number, keys }
    }

    fn by(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { reverse, key }
    }

    #[test]
    fn criteria_apply_in_order_and_ties_keep_mailbox_order_even_reversed() {
        let keyed = |size, subject: &str| pb::Sorting { size, base_subject: subject.into(), ..Default::default() };
        let messages = vec![
            message(1, keyed(10, "b")),
            message(2, keyed(20, "a")),
            message(3, keyed(10, "a")),
            message(4, keyed(20, "a")),
        ];
        assert_eq!(sort(messages.clone(), &[by(SortKey::Subject, false), by(SortKey::Size, false)]), [3, 2, 4, 1]);
        // REVERSE turns the key's order round, not the tie-break (RFC 5256 §3).
        assert_eq!(sort(messages.clone(), &[by(SortKey::Size, true)]), [2, 4, 1, 3]);
        assert_eq!(sort(messages, &[]), [1, 2, 3, 4]);
    }

    #[test]
    fn strings_compare_ascii_case_insensitively() {
        let from = |name: &str| pb::Sorting { from_mailbox: name.into(), ..Default::default() };
        let messages =
            vec![message(1, from("bob")), message(2, from("Alice")), message(3, from("")), message(4, from("ALICE"))];
        assert_eq!(sort(messages, &[by(SortKey::From, false)]), [3, 2, 4, 1]);
    }

    #[test]
    fn date_arrival_and_display_keys_read_their_own_fields() {
        let keys = |sent, arrived, display: &str| pb::Sorting {
            sent_unix: sent,
            internal_date_unix: arrived,
            display_from: display.into(),
            ..Default::default()
        };
        let messages = vec![
            message(1, keys(300, 100, "Zed")),
            message(2, keys(200, 300, "amy")),
            message(3, keys(100, 200, "Bo")),
        ];
        assert_eq!(sort(messages.clone(), &[by(SortKey::Date, false)]), [3, 2, 1]);
        assert_eq!(sort(messages.clone(), &[by(SortKey::Arrival, false)]), [1, 3, 2]);
        assert_eq!(sort(messages, &[by(SortKey::DisplayFrom, false)]), [2, 3, 1]);
    }

    #[test]
    fn esearch_keeps_sort_order() {
        let all = ReturnOptions::default();
        assert_eq!(render_esearch("a", false, &all, &[2, 3, 4, 1, 7], None), "* ESEARCH (TAG \"a\") ALL 2:4,1,7\r\n");
        let options = context::parse_return("MIN MAX COUNT", &["MIN", "MAX", "COUNT"]).unwrap();
        assert_eq!(
            render_esearch("b", true, &options, &[9, 2, 5], Some(7)),
            "* ESEARCH (TAG \"b\") UID MIN 9 MAX 5 COUNT 3 MODSEQ 7\r\n"
        );
        assert_eq!(render_esearch("c", false, &options, &[], None), "* ESEARCH (TAG \"c\") COUNT 0\r\n");
        let partial = context::parse_return("PARTIAL -1:-3", &[]).unwrap();
        assert_eq!(
            render_esearch("d", false, &partial, &[9, 2, 3, 4, 1], None),
            "* ESEARCH (TAG \"d\") PARTIAL (-1:-3 3:4,1)\r\n"
        );
        assert_eq!(render_esearch("e", false, &partial, &[], None), "* ESEARCH (TAG \"e\") PARTIAL (-1:-3 NIL)\r\n");
    }

    #[test]
    fn renders_the_untagged_line() {
        assert_eq!(render(&[3, 1, 2], None), "* SORT 3 1 2\r\n");
        assert_eq!(render(&[3, 1, 2], Some(9)), "* SORT 3 1 2 (MODSEQ 9)\r\n");
        assert_eq!(render(&[], Some(9)), "* SORT\r\n");
    }
}
