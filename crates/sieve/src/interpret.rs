//! Running a checked script (RFC 5228 §2.10): commands in order, tests against the message, actions
//! collected with their duplicates merged, implicit keep at the end, and every step charged to the
//! budget. A runtime error discards the collected actions and keeps the message in INBOX.

use crate::compare::{self, Comparator, MatchType};
use crate::message::{self, Message};
use crate::script::*;
use crate::variables::{self, Variables};
use crate::{Action, Budget, Input, Limits, Outcome, RuntimeError, Script, date, vacation};

pub(crate) fn run(script: &Script, input: &Input<'_>, limits: &Limits) -> Outcome {
    let mut run = Run {
        script,
        input,
        limits,
        message: Message::new(input.message),
        budget: Budget::new(limits.max_steps),
        actions: Vec::new(),
        implicit_keep: true,
        discarded: false,
        flags: Vec::new(),
        variables: Variables::new(),
        matched: Vec::new(),
        redirects: 0,
    };
    match run.block(&script.commands) {
        Ok(_) => run.finish(),
        Err(error) => {
            Outcome { actions: vec![Action::Keep { flags: Vec::new() }], implicit_keep: true, error: Some(error) }
        }
    }
}

enum Flow {
    Next,
    Stop,
}

struct Run<'s, 'i> {
    script: &'s Script,
    input: &'i Input<'i>,
    limits: &'i Limits,
    message: Message<'i>,
    budget: Budget,
    actions: Vec<Action>,
    implicit_keep: bool,
    discarded: bool,
    /// RFC 5232 §3: the internal variable holding the flags keep and fileinto use.
    flags: Vec<String>,
    variables: Variables,
    /// RFC 5229 §3.2: `${0}`, `${1}`… from the last successful `:matches`.
    matched: Vec<String>,
    redirects: usize,
}

type Result<T> = std::result::Result<T, RuntimeError>;

impl Run<'_, '_> {
    fn finish(mut self) -> Outcome {
        let implicit = self.implicit_keep;
        if implicit {
            let flags = self.flags.clone();
            self.merge(Action::Keep { flags });
        }
        let delivered = self.actions.iter().any(|a| !matches!(a, Action::Vacation(_)));
        if self.discarded && !delivered {
            self.actions.push(Action::Discard);
        }
        Outcome { actions: self.actions, implicit_keep: implicit, error: None }
    }

    fn block(&mut self, commands: &[Command]) -> Result<Flow> {
        for command in commands {
            self.budget.spend(1)?;
            if let Flow::Stop = self.command(command)? {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Next)
    }

    fn command(&mut self, command: &Command) -> Result<Flow> {
        match command {
            Command::If { branches, otherwise } => {
                for (test, block) in branches {
                    if self.test(test)? {
                        return self.block(block);
                    }
                }
                return self.block(otherwise);
            }
            Command::Stop => return Ok(Flow::Stop),
            Command::Keep { flags } => {
                let flags = self.action_flags(flags.as_deref());
                self.implicit_keep = false;
                self.add(Action::Keep { flags })?;
            }
            Command::Discard => {
                self.implicit_keep = false;
                self.discarded = true;
            }
            Command::Redirect { address, copy } => self.redirect(address, *copy)?,
            Command::FileInto { mailbox, flags, copy, create } => {
                let mailbox = self.expand(mailbox);
                let flags = self.action_flags(flags.as_deref());
                if !copy {
                    self.implicit_keep = false;
                }
                // RFC 5228 §2.10.3: filing into INBOX is keeping.
                if mailbox.eq_ignore_ascii_case("INBOX") {
                    self.add(Action::Keep { flags })?;
                } else {
                    self.add(Action::FileInto { mailbox, flags, create: *create })?;
                }
            }
            Command::Reject { reason, extended } => {
                let reason = self.expand(reason);
                self.implicit_keep = false;
                self.add(Action::Reject { reason, extended: *extended })?;
            }
            Command::Flags { change, variable, flags } => self.change_flags(*change, variable.as_deref(), flags),
            Command::Set { name, value, modifiers } => {
                let value = variables::bounded(variables::modify(self.expand(value), modifiers));
                self.variables.insert(name.clone(), value);
            }
            Command::Vacation(command) => self.vacation(command)?,
        }
        Ok(Flow::Next)
    }

    fn expand(&self, text: &str) -> String {
        if self.script.has(Extension::Variables) {
            variables::expand(text, &self.variables, &self.matched)
        } else {
            text.to_owned()
        }
    }

    fn expand_all(&self, texts: &[String]) -> Vec<String> {
        texts.iter().map(|t| self.expand(t)).collect()
    }

    /// Adds an action unless the same one is already there (RFC 5228 §2.10.3); flags of a repeated
    /// store are merged.
    fn add(&mut self, action: Action) -> Result<()> {
        self.check_conflicts(&action)?;
        if !self.merge(action) && self.actions.len() > self.limits.max_actions {
            return Err(RuntimeError::TooManyActions(self.limits.max_actions));
        }
        Ok(())
    }

    /// RFC 5429 §2.1: a rejected message is not also delivered, redirected, rejected twice or
    /// answered by vacation (RFC 5230 §4.7). Pigeonhole refuses the same pairs; implicit keep is not
    /// one of them.
    fn check_conflicts(&self, action: &Action) -> Result<()> {
        let rejected = || self.actions.iter().any(|a| matches!(a, Action::Reject { .. }));
        let conflict = match action {
            Action::Reject { .. } => self.actions.iter().find(|a| !matches!(a, Action::Discard)).map(describe),
            Action::Keep { .. } | Action::FileInto { .. } | Action::Redirect { .. } | Action::Vacation(_) => {
                rejected().then(|| describe(action))
            }
            Action::Discard => None,
        };
        match conflict {
            Some(other) => Err(RuntimeError::Conflict(format!("reject conflicts with {other}"))),
            None => Ok(()),
        }
    }

    /// Returns whether the action merged into one already present.
    fn merge(&mut self, action: Action) -> bool {
        for existing in &mut self.actions {
            match (existing, &action) {
                (Action::Keep { flags: a }, Action::Keep { flags: b }) => {
                    union(a, b);
                    return true;
                }
                (
                    Action::FileInto { mailbox: m, flags: a, create: c },
                    Action::FileInto { mailbox, flags: b, create },
                ) if m == mailbox => {
                    union(a, b);
                    *c |= create;
                    return true;
                }
                (Action::Redirect { address: a, copy: c }, Action::Redirect { address, copy })
                    if a.eq_ignore_ascii_case(address) =>
                {
                    *c &= copy;
                    return true;
                }
                _ => {}
            }
        }
        self.actions.push(action);
        false
    }

    fn redirect(&mut self, address: &str, copy: bool) -> Result<()> {
        let address = self.expand(address);
        let address = address.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
        if !valid_address(&address) {
            return Err(RuntimeError::InvalidRedirect(address));
        }
        let known = self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Redirect { address: a, .. } if a.eq_ignore_ascii_case(&address)));
        if !known {
            self.redirects += 1;
            if self.redirects > self.limits.max_redirects {
                return Err(RuntimeError::TooManyRedirects(self.limits.max_redirects));
            }
        }
        if !copy {
            self.implicit_keep = false;
        }
        self.add(Action::Redirect { address, copy })
    }

    fn action_flags(&self, explicit: Option<&[String]>) -> Vec<String> {
        match explicit {
            Some(list) => flag_list(&self.expand_all(list)),
            None => self.flags.clone(),
        }
    }

    fn change_flags(&mut self, change: FlagChange, variable: Option<&str>, flags: &[String]) {
        let given = flag_list(&self.expand_all(flags));
        let mut current = match variable {
            Some(name) => flag_list(&[self.variables.get(name).cloned().unwrap_or_default()]),
            None => std::mem::take(&mut self.flags),
        };
        match change {
            FlagChange::Set => current = given,
            FlagChange::Add => union(&mut current, &given),
            FlagChange::Remove => current.retain(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f))),
        }
        match variable {
            Some(name) => {
                self.variables.insert(name.to_owned(), current.join(" "));
            }
            None => self.flags = current,
        }
    }

    fn vacation(&mut self, command: &VacationCommand) -> Result<()> {
        // RFC 5230 §4.7 does not repeat vacation: a second one is the script's error.
        if self.actions.iter().any(|a| matches!(a, Action::Vacation(_))) {
            return Err(RuntimeError::Conflict("vacation is used twice".into()));
        }
        let expanded = VacationCommand {
            days: command.days,
            subject: command.subject.as_deref().map(|s| self.expand(s)),
            from: command.from.as_deref().map(|s| self.expand(s)),
            addresses: self.expand_all(&command.addresses),
            mime: command.mime,
            // RFC 5230 §4.2: response tracking uses the arguments before variable expansion, so that
            // `:subject "Automatic response to: ${1}"` answers a sender once, whatever the subjects.
            handle: Some(command.handle.clone().unwrap_or_else(|| vacation::default_handle(command))),
            reason: self.expand(&command.reason),
        };
        if let Some(reply) = vacation::reply(&expanded, &self.message, self.input, self.limits) {
            self.add(Action::Vacation(reply))?;
        }
        Ok(())
    }

    fn test(&mut self, test: &Test) -> Result<bool> {
        self.budget.spend(1)?;
        match test {
            Test::True => Ok(true),
            Test::False => Ok(false),
            Test::Not(inner) => Ok(!self.test(inner)?),
            Test::AllOf(tests) => {
                for t in tests {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Test::AnyOf(tests) => {
                for t in tests {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Test::Exists(names) => Ok(self.expand_all(names).iter().all(|n| self.message.has(n))),
            Test::Size { over, limit } => {
                let size = self.message.size();
                Ok(if *over { size > *limit } else { size < *limit })
            }
            Test::Header { matching, names, keys, index } => {
                let mut values = Vec::new();
                for name in self.expand_all(names) {
                    values.extend(pick(self.message.values(&name), *index));
                }
                self.compare(matching, &values, keys)
            }
            Test::Address { matching, part, names, keys, index } => {
                let mut values = Vec::new();
                for name in self.expand_all(names) {
                    let fields: Vec<String> = self.message.raw_values(&name).map(str::to_owned).collect();
                    // Encoded words only ever stand in display names and comments, which the address
                    // list drops: decoding first would let an encoded comma split a name in two.
                    for field in pick(fields, *index) {
                        values
                            .extend(message::addresses(&field).iter().filter_map(|a| message::address_part(a, *part)));
                    }
                }
                self.compare(matching, &values, keys)
            }
            Test::Envelope { matching, part, names, keys } => {
                let mut values = Vec::new();
                for name in self.expand_all(names) {
                    match name.to_ascii_lowercase().as_str() {
                        // RFC 5228 §5.4: the null reverse-path is the empty string, whatever the part.
                        "from" => match self.input.envelope.from.filter(|f| !f.is_empty()) {
                            Some(from) => values.extend(message::address_part(from, *part)),
                            None => values.push(String::new()),
                        },
                        "to" => values.extend(message::address_part(self.input.envelope.to, *part)),
                        _ => {}
                    }
                }
                self.compare(matching, &values, keys)
            }
            Test::Body { matching, transform, keys } => {
                let transform = match transform {
                    BodyTransform::Content(types) => BodyTransform::Content(self.expand_all(types)),
                    other => other.clone(),
                };
                let values = self.message.body(&transform);
                self.budget.spend(values.iter().map(|v| v.len() as u64 / 256).sum())?;
                self.compare(matching, &values, keys)
            }
            Test::String { matching, sources, keys } => {
                let mut values = self.expand_all(sources);
                // RFC 5229 §5: `:count` does not count empty strings.
                if matches!(matching.kind, MatchType::Count(_)) {
                    values.retain(|v| !v.is_empty());
                }
                self.compare(matching, &values, keys)
            }
            Test::HasFlag { matching, variables, keys } => {
                let values = match variables {
                    Some(names) => flag_list(
                        &names.iter().map(|n| self.variables.get(n).cloned().unwrap_or_default()).collect::<Vec<_>>(),
                    ),
                    None => self.flags.clone(),
                };
                let keys = flag_list(&self.expand_all(keys));
                self.compare_expanded(matching, &values, &keys)
            }
            Test::Date { matching, zone, header, part, keys, index } => {
                let header = self.expand(header);
                let fields: Vec<String> = self.message.raw_values(&header).map(str::to_owned).collect();
                let Some(field) = pick(fields, *index).into_iter().next() else { return Ok(false) };
                let Some(date) = date::parse_header_date(&field) else { return Ok(false) };
                let date = match zone {
                    Zone::Original => date,
                    Zone::Local => date.with_timezone(&self.input.now.timezone()),
                    Zone::Fixed(z) => match date::parse_zone(&self.expand(z)) {
                        Some(offset) => date.with_timezone(&offset),
                        None => return Ok(false),
                    },
                };
                let values: Vec<String> = date::part(&date, &self.expand(part)).into_iter().collect();
                self.compare(matching, &values, keys)
            }
            Test::CurrentDate { matching, zone, part, keys } => {
                let now = self.input.now;
                let now = match zone {
                    Zone::Fixed(z) => match date::parse_zone(&self.expand(z)) {
                        Some(offset) => now.with_timezone(&offset),
                        None => return Ok(false),
                    },
                    _ => now,
                };
                let values: Vec<String> = date::part(&now, &self.expand(part)).into_iter().collect();
                self.compare(matching, &values, keys)
            }
            Test::MailboxExists(names) => {
                Ok(self.expand_all(names).iter().all(|n| self.input.environment.mailbox_exists(n)))
            }
        }
    }

    fn compare(&mut self, matching: &Match, values: &[String], keys: &[String]) -> Result<bool> {
        let keys = self.expand_all(keys);
        self.compare_expanded(matching, values, &keys)
    }

    fn compare_expanded(&mut self, matching: &Match, values: &[String], keys: &[String]) -> Result<bool> {
        let comparator: Comparator = matching.comparator;
        let found = compare::test(comparator, matching.kind, values, keys, &mut self.budget)?;
        if let Some(captures) = found.captures
            && self.script.has(Extension::Variables)
        {
            self.matched = captures;
        }
        Ok(found.result)
    }
}

fn describe(action: &Action) -> &'static str {
    match action {
        Action::Keep { .. } => "keep",
        Action::FileInto { .. } => "fileinto",
        Action::Redirect { .. } => "redirect",
        Action::Reject { .. } => "another reject",
        Action::Discard => "discard",
        Action::Vacation(_) => "vacation",
    }
}

/// RFC 5260 §6: `:index n` counts occurrences from the first, or with `:last` from the last.
fn pick(values: Vec<String>, index: Option<Index>) -> Vec<String> {
    let Some(Index { n, last }) = index else { return values };
    let Ok(n) = usize::try_from(n) else { return Vec::new() };
    let at = if last { values.len().checked_sub(n) } else { n.checked_sub(1) };
    at.and_then(|i| values.into_iter().nth(i)).into_iter().collect()
}

/// RFC 5232 §3: flags are space-separated words, each once, compared without case.
fn flag_list(strings: &[String]) -> Vec<String> {
    let mut flags = Vec::new();
    for flag in strings.iter().flat_map(|s| s.split_ascii_whitespace()) {
        union(&mut flags, &[flag.to_owned()]);
    }
    flags
}

fn union(into: &mut Vec<String>, more: &[String]) {
    for flag in more {
        if !into.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
            into.push(flag.clone());
        }
    }
}

/// A redirect target must be a plain `local@domain` (RFC 5228 §4.2).
pub(crate) fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else { return false };
    !local.is_empty()
        && !domain.is_empty()
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '(' | ')'))
        && domain.split('.').all(|label| !label.is_empty())
}
