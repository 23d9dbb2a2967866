//! RFC 3502 MULTIAPPEND and RFC 4469 CATENATE: an APPEND imap-codec could not parse (several messages,
//! or a message made of parts), cut up by `crate::multiappend`. Every message is built and checked
//! before any is stored, and the store adds them all in one call, so one failure (a BADURL, a message
//! over APPENDLIMIT, the quota, no such mailbox) adds none.

use futures::StreamExt;

use super::*;
use crate::imap_url::{self, MessageUrl};
use crate::multiappend::{Append, Content, Part, Refused};

/// Why a message could not be built from its CATENATE parts.
enum Unbuilt {
    /// RFC 4469 §6: `NO [BADURL url]`.
    BadUrl(String),
    /// Past APPENDLIMIT.
    TooBig,
    /// The store failed while reading a part.
    Store(StoreError),
}

impl<S: Store, W: Wire> Session<S, W> {
    /// Answers an APPEND `crate::multiappend` read (or refused), as `command` answers the others: the
    /// untagged updates, then the tagged status.
    pub(super) async fn multiappend(&mut self, parsed: Result<Append<'_>, Refused>) -> Flow {
        self.command_metric("append");
        let status = match (parsed, self.state.login().map(|l| l.account_id)) {
            (Err(refused), _) => bad(refused.tag, refused.why),
            (Ok(append), None) => bad(Some(append.tag), "log in first"),
            (Ok(append), Some(id)) => self.append_all(append, id).await,
        };
        if matches!(self.state, State::Selected(..)) && self.sync(Sync::Full, false).await == Flow::Close {
            return Flow::Close;
        }
        self.server.enqueue_status(status);
        Flow::Continue
    }

    /// One APPEND with one or more messages, each a literal or a CATENATE: all stored, with consecutive
    /// UIDs answered as RFC 4315's uid-set, or none.
    pub(super) async fn append_all(&mut self, append: Append<'_>, account_id: AccountId) -> Status<'static> {
        let tag = append.tag;
        let Some(name) = self.name_of(&append.mailbox) else {
            return no(tag, None, "mailbox name is not modified UTF-7");
        };
        let limit = self.config.max_message_size;
        let mut messages = Vec::with_capacity(append.messages.len());
        let mut total = 0u64;
        for message in append.messages {
            let octets = match message.content {
                Content::Literal(octets) => octets.to_vec(),
                Content::Catenate(parts) => match self.catenate(account_id, &parts).await {
                    Ok(octets) => octets,
                    Err(Unbuilt::BadUrl(url)) => {
                        let code = other_code(&format!("BADURL {}", url_resp_text(&url)));
                        return no(tag, Some(code), "CATENATE URL does not resolve");
                    }
                    Err(Unbuilt::TooBig) => return no(tag, Some(Code::TooBig), "message exceeds APPENDLIMIT"),
                    Err(Unbuilt::Store(error)) => return refusal(tag, &error),
                },
            };
            if octets.len() as u64 > limit {
                return no(tag, Some(Code::TooBig), "message exceeds APPENDLIMIT");
            }
            if octets.is_empty() {
                return no(tag, None, "a message cannot be empty");
            }
            // The messages are held together until the store has them: together they stay within what one
            // command may bring (RFC 5530 LIMIT).
            total += octets.len() as u64;
            if total > limit {
                return no(tag, Some(other_code("LIMIT")), "the messages of one APPEND together exceed APPENDLIMIT");
            }
            let header = pb::AppendHeader {
                account_id: account_id.get(),
                mailbox: name.clone(),
                flags: message.flags.iter().map(|f| f.to_string()).collect(),
                internal_date_unix: message.date,
                size: octets.len() as u64,
                import_digest: None,
            };
            messages.push((header, octets));
        }
        match self.store.append_all(messages).await {
            Ok(reply) => {
                if let Some(selected) = self.state.selected() {
                    selected.dirty = true;
                }
                let uids = match reply.last_uid {
                    last if last > reply.uid => format!("{}:{last}", reply.uid),
                    _ => reply.uid.to_string(),
                };
                ok(tag, Some(other_code(&format!("APPENDUID {} {uids}", reply.uidvalidity))), "APPEND completed")
            }
            Err(StoreError::NonExistent(_)) => no(tag, Some(Code::TryCreate), "no such mailbox"),
            Err(error) => refusal(tag, &error),
        }
    }

    /// RFC 4469 §3: the parts one after another, each URL's octets read from the store, never past
    /// APPENDLIMIT.
    async fn catenate(&mut self, account_id: AccountId, parts: &[Part<'_>]) -> Result<Vec<u8>, Unbuilt> {
        let limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        let mut octets = Vec::new();
        for part in parts {
            match part {
                Part::Text(text) => octets.extend_from_slice(text),
                Part::Url(url) => {
                    let Some(parsed) = imap_url::parse(url).filter(|u| self.names_this_account(u)) else {
                        return Err(Unbuilt::BadUrl(url.clone()));
                    };
                    match self.read_url(account_id, &parsed, limit.saturating_sub(octets.len())).await {
                        Ok(Some(read)) => octets.extend_from_slice(&read),
                        Ok(None) => return Err(Unbuilt::BadUrl(url.clone())),
                        Err(unbuilt) => return Err(unbuilt),
                    }
                }
            }
            if octets.len() > limit {
                return Err(Unbuilt::TooBig);
            }
        }
        Ok(octets)
    }

    /// A relative URL is the session's own; an absolute one must name its user (or none) and this server.
    fn names_this_account(&self, url: &MessageUrl) -> bool {
        let user_ok = match (&url.user, self.state.login()) {
            (None, _) => true,
            (Some(user), Some(login)) => user.eq_ignore_ascii_case(&login.address),
            (Some(_), None) => false,
        };
        user_ok && url.host.as_deref().is_none_or(|host| self.store.serves_host(host))
    }

    /// The octets a URL names, at most `room` of them (`TooBig` past that); `None` when the mailbox, the
    /// UIDVALIDITY, the message or the section is not there.
    async fn read_url(
        &mut self,
        account_id: AccountId,
        url: &MessageUrl,
        room: usize,
    ) -> Result<Option<Vec<u8>>, Unbuilt> {
        let Some(section) = section_of(url.section.as_deref()) else { return Ok(None) };
        let mailbox = url.mailbox.clone();
        let status =
            self.store.status(pb::StatusRequest { account_id: account_id.get(), mailbox: mailbox.clone() }).await;
        match status {
            Ok(status) if url.uidvalidity.is_none_or(|v| v == status.uidvalidity) => {}
            Ok(_) | Err(StoreError::NonExistent(_) | StoreError::Cannot(_)) => return Ok(None),
            Err(error) => return Err(Unbuilt::Store(error)),
        }
        let request = pb::FetchRequest {
            account_id: account_id.get(),
            mailbox,
            uids: vec![url.uid],
            sections: vec![section],
            ..Default::default()
        };
        let mut rows = match self.store.fetch(request).await {
            Ok(rows) => rows,
            Err(StoreError::NonExistent(_) | StoreError::Cannot(_)) => return Ok(None),
            Err(error) => return Err(Unbuilt::Store(error)),
        };
        let (skip, take) = match url.partial {
            Some((offset, length)) => (offset, length.unwrap_or(u64::MAX)),
            None => (0, u64::MAX),
        };
        let mut found = false;
        let mut octets = Vec::new();
        let mut seen = 0u64;
        while let Some(row) = rows.next().await {
            match row {
                Ok(pb::FetchResponse { item: Some(pb::fetch_response::Item::Message(message)) }) => {
                    if message.section_sizes.first().is_none_or(|&size| size < 0) {
                        return Ok(None);
                    }
                    found = true;
                }
                Ok(pb::FetchResponse { item: Some(pb::fetch_response::Item::Chunk(chunk)) }) => {
                    // RFC 5092 ;PARTIAL: the octets from `skip`, `take` of them.
                    let start = skip.saturating_sub(seen).min(chunk.data.len() as u64) as usize;
                    let wanted = take.saturating_sub(octets.len() as u64);
                    let end = (start as u64).saturating_add(wanted).min(chunk.data.len() as u64) as usize;
                    seen += chunk.data.len() as u64;
                    octets.extend_from_slice(&chunk.data[start..end]);
                    if octets.len() > room {
                        return Err(Unbuilt::TooBig);
                    }
                }
                Ok(_) => {}
                Err(StoreError::NonExistent(_) | StoreError::Cannot(_)) => return Ok(None),
                Err(error) => return Err(Unbuilt::Store(error)),
            }
        }
        Ok(found.then_some(octets))
    }
}

/// RFC 4469 §6 url-resp-text: the URL as the client wrote it, with what a response code cannot hold (`]`,
/// controls, non-ASCII, and `%` so the result stays unambiguous) written as `%XX`.
fn url_resp_text(url: &str) -> String {
    let mut text = String::with_capacity(url.len());
    for b in url.bytes() {
        if b == b']' || b == b'%' || b.is_ascii_control() || !b.is_ascii() {
            text.push_str(&format!("%{b:02X}"));
        } else {
            text.push(char::from(b));
        }
    }
    text
}

/// An IMAP URL's section (`1.2`, `HEADER`, `1.MIME`, `HEADER.FIELDS (SUBJECT)`) as the store's, read by
/// imap-codec as the section of a `BODY.PEEK[...]`; `Some(whole message)` for none, `None` for one that
/// is not a section.
fn section_of(section: Option<&str>) -> Option<pb::Section> {
    let Some(section) = section else { return Some(fetch::section_request(None, None)) };
    if section.bytes().any(|b| b == b']' || b == b'[' || b.is_ascii_control()) {
        return None;
    }
    let line = format!("x FETCH 1 BODY.PEEK[{section}]\r\n");
    let (_, command) = imap_codec::CommandCodec::default().decode(line.as_bytes()).ok()?;
    let CommandBody::Fetch { macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names), .. } =
        command.body
    else {
        return None;
    };
    match names.as_slice() {
        [MessageDataItemName::BodyExt { section, .. }] => Some(fetch::section_request(section.as_ref(), None)),
        _ => None,
    }
}
