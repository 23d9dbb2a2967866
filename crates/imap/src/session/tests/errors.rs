//! The store's typed refusals as RFC 5530 response codes: NONEXISTENT, ALREADYEXISTS, HASCHILDREN
//! (RFC 9051 §7.1), TRYCREATE for APPEND, COPY and MOVE.

use super::*;

#[test]
fn the_store_refusals_become_response_codes() {
    let mut client = Client::new();
    client.store.create("A", "");
    client.store.create("A/B", "");
    client.login();
    assert_eq!(client.send("a SELECT Nope\r\n"), "a NO [NONEXISTENT] no mailbox \"Nope\"\r\n");
    assert_eq!(client.send("b CREATE A\r\n"), "b NO [ALREADYEXISTS] mailbox \"A\" already exists\r\n");
    assert_eq!(client.send("c DELETE A\r\n"), "c NO [HASCHILDREN] mailbox \"A\" has children\r\n");
    assert_eq!(client.send("d DELETE A/B\r\n"), "d OK DELETE completed\r\n");
    assert_eq!(client.send("e CREATE C/\r\n"), "e OK [MAILBOXID (m4)] CREATE completed\r\n");
    assert_eq!(client.send("f STATUS Nope (MESSAGES)\r\n"), "f NO [NONEXISTENT] no mailbox \"Nope\"\r\n");
}

#[test]
fn every_store_error_has_its_code_and_an_outage_a_text_that_says_try_again() {
    let tag = || Tag::try_from("t").unwrap();
    let written = |error: StoreError| String::from_utf8(response::encode(refusal(tag(), &error))).unwrap();
    let cases = [
        (StoreError::NonExistent("gone".into()), "t NO [NONEXISTENT] gone\r\n"),
        (StoreError::AlreadyExists("there".into()), "t NO [ALREADYEXISTS] there\r\n"),
        (StoreError::HasChildren("kids".into()), "t NO [HASCHILDREN] kids\r\n"),
        (StoreError::OverQuota("4.2.2 full".into()), "t NO [OVERQUOTA] 4.2.2 full\r\n"),
        (StoreError::Cannot("bad name".into()), "t NO [CANNOT] bad name\r\n"),
        (
            StoreError::Unavailable("database unavailable".into()),
            "t NO [UNAVAILABLE] the mail store is unavailable, try again\r\n",
        ),
        (StoreError::Other("denied".into()), "t NO [UNAVAILABLE] denied\r\n"),
    ];
    for (error, expected) in cases {
        assert_eq!(written(error), expected);
    }
}
