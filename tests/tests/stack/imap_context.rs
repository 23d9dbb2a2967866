//! IMAP's RFC 8514 SAVEDATE, RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT (PARTIAL and UPDATE), ESORT's
//! SAVE and MODSEQ, and THREAD in Date order, through the whole stack (PostgreSQL, NATS, SMTP delivery)
//! with raw IMAP connections.

use chrono::{TimeZone, Utc};
use mailbus_tests::TestStack;

use crate::PATIENCE;
use crate::imap::{answer, deliver, selected_inbox};

/// Sends `command` until an answer has a line for which `done` holds (a delivery through the relay is
/// not in the mailbox yet when SMTP says 250); that answer.
async fn answer_until(
    client: &mut mailbus_tests::raw::RawClient,
    command: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let lines = answer(client, "w", command).await;
        if done(&lines) {
            return lines;
        }
        assert!(started.elapsed() < PATIENCE, "never saw what was waited for: {lines:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// RFC 8514: a copy is saved when it is made, whatever its internal date; FETCH SAVEDATE and the
/// SAVED* search keys read that date.
#[tokio::test(flavor = "multi_thread")]
async fn savedate_of_a_copy_is_when_it_was_copied() {
    let stack = TestStack::start().await;
    let id = stack.add_account("sav@example.org", "sav pw").await;
    // Internal date 2020-01-01T00:00:00Z.
    let old = 1_577_836_800;
    crate::store::append(&stack, id, "INBOX", &[], Some(old), b"Subject: old\r\n\r\nx\r\n").await.unwrap();
    let mut client = selected_inbox(&stack, "sav@example.org", "sav pw").await;
    let caps = answer(&mut client, "c", "CAPABILITY").await;
    assert!(caps[0].contains(" SAVEDATE") && caps[0].contains(" SEARCHRES"), "{caps:?}");
    let created = answer(&mut client, "a", "CREATE Kept").await;
    assert!(created[0].starts_with("a OK "), "{created:?}");
    let copied = answer(&mut client, "b", "COPY 1 Kept").await;
    assert!(copied[0].starts_with("b OK [COPYUID "), "{copied:?}");
    assert_eq!(answer(&mut client, "s", "SELECT Kept").await.last().unwrap(), "s OK [READ-WRITE] SELECT completed");
    let today = Utc::now().date_naive();
    let fetched = answer(&mut client, "f", "FETCH 1 (INTERNALDATE SAVEDATE)").await;
    let internal = "INTERNALDATE \"01-Jan-2020 00:00:00 +0000\"";
    let saved = format!("SAVEDATE \"{}", today.format("%d-%b-%Y"));
    assert!(fetched[0].starts_with(&format!("* 1 FETCH ({internal} {saved} ")), "{fetched:?}");
    let day = |d: chrono::NaiveDate| d.format("%-d-%b-%Y").to_string();
    let on = answer(&mut client, "g", &format!("SEARCH SAVEDON {} SAVEDATESUPPORTED", day(today))).await;
    assert_eq!(on, ["* SEARCH 1", "g OK SEARCH completed"]);
    let before = answer(&mut client, "h", &format!("SEARCH SAVEDBEFORE {}", day(today))).await;
    assert_eq!(before, ["* SEARCH", "h OK SEARCH completed"]);
    // By internal date it is still 2020's.
    let since = answer(&mut client, "i", "SEARCH BEFORE 1-Jan-2021 SAVEDSINCE 1-Jan-2021").await;
    assert_eq!(since, ["* SEARCH 1", "i OK SEARCH completed"]);
    let bad = answer(&mut client, "j", "SEARCH SAVEDON yesterday").await;
    assert!(bad[0].starts_with("j BAD"), "{bad:?}");
    stack.stop().await;
}

/// RFC 5267 §4: an UPDATE context hears of a message delivered over SMTP (ADDTO, after its EXISTS) and of
/// an expunge another session made (REMOVEFROM, before its EXPUNGE); CANCELUPDATE ends it.
#[tokio::test(flavor = "multi_thread")]
async fn update_context_follows_smtp_delivery_and_expunge_elsewhere() {
    let stack = TestStack::start().await;
    stack.add_account("upd@example.org", "upd pw").await;
    deliver(&stack, "upd@example.org", "first").await;
    let mut watcher = selected_inbox(&stack, "upd@example.org", "upd pw").await;
    answer_until(&mut watcher, "UID SEARCH ALL", |lines| lines.iter().any(|l| l == "* SEARCH 1")).await;
    let caps = answer(&mut watcher, "c", "CAPABILITY").await;
    assert!(caps[0].contains(" CONTEXT=SEARCH") && caps[0].contains(" CONTEXT=SORT"), "{caps:?}");
    let started = answer(&mut watcher, "u", "UID SEARCH RETURN (UPDATE) ALL").await;
    assert_eq!(started, ["* ESEARCH (TAG \"u\") UID ALL 1", "u OK SEARCH completed"]);

    deliver(&stack, "upd@example.org", "second").await;
    let lines = answer_until(&mut watcher, "NOOP", |lines| lines.iter().any(|l| l == "* 2 EXISTS")).await;
    let exists = lines.iter().position(|l| l == "* 2 EXISTS").unwrap();
    let addto = lines.iter().position(|l| l == "* ESEARCH (TAG \"u\") UID ADDTO (0 2)");
    assert!(addto.is_some_and(|at| at > exists), "{lines:?}");

    let mut other = selected_inbox(&stack, "upd@example.org", "upd pw").await;
    assert_eq!(answer(&mut other, "s", "UID STORE 1 +FLAGS.SILENT (\\Deleted)").await, ["s OK STORE completed"]);
    let expunged = answer(&mut other, "x", "UID EXPUNGE 1").await;
    assert_eq!(expunged.last().unwrap(), "x OK EXPUNGE completed");
    let lines = answer_until(&mut watcher, "NOOP", |lines| lines.iter().any(|l| l == "* 1 EXPUNGE")).await;
    let removed = lines.iter().position(|l| l == "* ESEARCH (TAG \"u\") UID REMOVEFROM (0 1)");
    let expunge = lines.iter().position(|l| l == "* 1 EXPUNGE").unwrap();
    assert!(removed.is_some_and(|at| at < expunge), "{lines:?}");

    assert_eq!(answer(&mut watcher, "k", "CANCELUPDATE \"u\"").await, ["k OK CANCELUPDATE completed"]);
    deliver(&stack, "upd@example.org", "third").await;
    let lines = answer_until(&mut watcher, "NOOP", |lines| lines.iter().any(|l| l == "* 2 EXISTS")).await;
    assert!(!lines.iter().any(|l| l.starts_with("* ESEARCH")), "{lines:?}");
    stack.stop().await;
}

/// RFC 5267 PARTIAL (and RFC 9394's ranges from the end), SORT's MODSEQ (RFC 7162 §3.1.5) and SAVE
/// (RFC 5182 §2.4), and RFC 5256 THREAD in the order of the Date fields rather than of arrival.
#[tokio::test(flavor = "multi_thread")]
async fn partial_sort_modseq_and_save_and_thread_by_date() {
    let stack = TestStack::start().await;
    let id = stack.add_account("srt@example.org", "srt pw").await;
    // Arrival order 1, 2, 3; Date order 3, 2, 1.
    for (subject, day) in [("same", 3), ("Re: same", 2), ("other", 1)] {
        let date = Utc.with_ymd_and_hms(2026, 2, day, 10, 0, 0).unwrap().to_rfc2822();
        let body = format!("Date: {date}\r\nSubject: {subject}\r\n\r\nx\r\n");
        crate::store::append(&stack, id, "INBOX", &[], None, body.as_bytes()).await.unwrap();
    }
    let mut client = selected_inbox(&stack, "srt@example.org", "srt pw").await;
    let threads = answer(&mut client, "t", "THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(threads, ["* THREAD (3)(2 1)", "t OK THREAD completed"]);

    let partial = answer(&mut client, "p", "UID SEARCH RETURN (PARTIAL -1:-2) ALL").await;
    assert_eq!(partial, ["* ESEARCH (TAG \"p\") UID PARTIAL (-1:-2 2:3)", "p OK SEARCH completed"]);
    let partial = answer(&mut client, "q", "SORT RETURN (PARTIAL 1:2 COUNT) (DATE) UTF-8 ALL").await;
    assert_eq!(partial, ["* ESEARCH (TAG \"q\") COUNT 3 PARTIAL (1:2 3,2)", "q OK SORT completed"]);

    // Each message's MODSEQ, to know what SORT must report.
    let fetched = answer(&mut client, "m", "FETCH 1:3 (MODSEQ)").await;
    let modseq = |n: usize| -> u64 {
        let line = fetched.iter().find(|l| l.starts_with(&format!("* {n} FETCH"))).expect("a FETCH per message");
        line.rsplit_once("MODSEQ (").unwrap().1.trim_end_matches("))").parse().unwrap()
    };
    let highest = (1..=3).map(modseq).max().unwrap();
    let sorted = answer(&mut client, "a", "SORT (DATE) UTF-8 MODSEQ 1").await;
    assert_eq!(sorted[0], format!("* SORT 3 2 1 (MODSEQ {highest})"), "{sorted:?}");
    let min = answer(&mut client, "b", "SORT RETURN (MIN) (DATE) UTF-8 MODSEQ 1").await;
    assert_eq!(min[0], format!("* ESEARCH (TAG \"b\") MIN 3 MODSEQ {}", modseq(3)), "{min:?}");

    let saved = answer(&mut client, "s", "SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT same").await;
    assert_eq!(saved, ["s OK SORT completed, result saved"]);
    let found = answer(&mut client, "d", "UID SEARCH UID $").await;
    assert_eq!(found, ["* SEARCH 1 2", "d OK SEARCH completed"]);
    stack.stop().await;
}
