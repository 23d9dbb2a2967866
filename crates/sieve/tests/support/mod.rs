//! What the integration tests share: a caller's environment kept in memory, and one way to run a
//! script on a message.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};
use mailbus_sieve::{Action, Envelope, Environment, Input, Limits, Outcome, VacationRecord};

#[derive(Default)]
pub struct Memory {
    pub replied: RefCell<HashSet<(String, String)>>,
    pub mailboxes: Vec<String>,
}

impl Environment for Memory {
    fn vacation_replied(&self, record: &VacationRecord) -> bool {
        self.replied.borrow().contains(&(record.sender.clone(), record.handle.clone()))
    }

    fn mailbox_exists(&self, name: &str) -> bool {
        self.mailboxes.iter().any(|m| m == name)
    }
}

pub struct Delivery<'a> {
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub account: &'a str,
    pub now: &'a str,
}

pub const DEFAULT: Delivery<'static> = Delivery {
    from: Some("coyote@desert.example.org"),
    to: "me@example.com",
    account: "me@example.com",
    now: "Tue, 10 Nov 2009 18:35:00 +0100",
};

pub fn run_with(script: &str, message: &str, delivery: &Delivery<'_>, memory: &Memory) -> Outcome {
    let limits = Limits::default();
    let script = match mailbus_sieve::parse(script, &limits) {
        Ok(script) => script,
        Err(e) => panic!("script does not parse: {e}\n{script}"),
    };
    let message = message.replace("\r\n", "\n").replace('\n', "\r\n");
    let input = Input {
        message: message.as_bytes(),
        envelope: Envelope { from: delivery.from, to: delivery.to, account: delivery.account },
        now: DateTime::<FixedOffset>::parse_from_rfc2822(delivery.now).unwrap(),
        environment: memory,
    };
    mailbus_sieve::execute(&script, &input, &limits)
}

pub fn run(script: &str, message: &str) -> Vec<Action> {
    let outcome = run_with(script, message, &DEFAULT, &Memory::default());
    assert_eq!(outcome.error, None, "runtime error");
    outcome.actions
}

pub fn keep() -> Action {
    Action::Keep { flags: Vec::new() }
}

pub fn fileinto(mailbox: &str) -> Action {
    Action::FileInto { mailbox: mailbox.to_owned(), flags: Vec::new(), create: false }
}

pub fn redirect(address: &str) -> Action {
    Action::Redirect { address: address.to_owned(), copy: false }
}

/// The vacation replies' reasons, for tests that care only whether and what vacation answered.
pub fn vacations(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Vacation(reply) => Some(reply.body.clone()),
            _ => None,
        })
        .collect()
}
