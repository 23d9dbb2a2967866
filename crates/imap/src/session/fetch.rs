//! FETCH: the items asked for, turned into the store's request, and the rows it streams written out as
//! they come (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 8474 and RFC 8970 items spliced in).

use super::*;

/// The most items one FETCH may name (RFC 9051 has about twenty kinds; sections and partials add more).
const MAX_FETCH_ITEMS: usize = 256;
/// The most body sections (BODY[…], BINARY[…], RFC822, RFC822.HEADER, RFC822.TEXT) one FETCH may name.
const MAX_FETCH_SECTIONS: usize = 64;

/// Whether `name` asks for octets of the message (a section the store extracts).
fn is_section(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::BodyExt { .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Header
            | MessageDataItemName::Rfc822Text
            | MessageDataItemName::Binary { .. }
            | MessageDataItemName::BinarySize { .. }
    )
}

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) async fn fetch(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        names: &MacroOrMessageDataItemNames<'static>,
        by_uid: bool,
        changed_since: Option<u64>,
    ) -> Status<'static> {
        let ids = self.object_ids();
        let names: Vec<MessageDataItemName<'static>> = match names {
            MacroOrMessageDataItemNames::Macro(Macro::Fast) => {
                vec![MessageDataItemName::Flags, MessageDataItemName::InternalDate, MessageDataItemName::Rfc822Size]
            }
            MacroOrMessageDataItemNames::Macro(Macro::All) => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
            ],
            MacroOrMessageDataItemNames::Macro(_) => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
                MessageDataItemName::Body,
            ],
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
        };
        // An item named twice is answered once; a FETCH of hundreds of items, or dozens of body
        // sections, is no client's and would multiply each message's reply (a 64 KiB command holds
        // thousands of `BODY[]`).
        if names.len() > MAX_FETCH_ITEMS {
            return bad(Some(tag), "too many items in one FETCH");
        }
        let mut unique: Vec<MessageDataItemName<'static>> = Vec::with_capacity(names.len());
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        let mut names = unique;
        if names.iter().filter(|n| is_section(n)).count() > MAX_FETCH_SECTIONS {
            return bad(Some(tag), "too many body sections in one FETCH");
        }
        if ids.filler && !by_uid {
            names.retain(|n| *n != MessageDataItemName::Uid);
        }
        if by_uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        let condstore =
            changed_since.is_some() || names.contains(&MessageDataItemName::ModSeq) || self.state.enabled().condstore;
        if condstore {
            // RFC 7162 §3.1: FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE for the session.
            self.enable_condstore();
        }
        let wants_flags = names.contains(&MessageDataItemName::Flags);
        if condstore && (changed_since.is_some() || wants_flags) && !names.contains(&MessageDataItemName::ModSeq) {
            names.push(MessageDataItemName::ModSeq);
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        let uids = render::resolve(set, &selected.uids, by_uid);
        let ghosts = !by_uid && uids.iter().any(|u| selected.vanished.contains(u));
        let mut sections = Vec::new();
        let mut section_of = Vec::with_capacity(names.len());
        let mut set_seen = false;
        for name in &names {
            let wanted = match name {
                MessageDataItemName::BodyExt { section, partial, peek } => {
                    set_seen |= !peek;
                    Some(section_request(section.as_ref(), *partial))
                }
                MessageDataItemName::Rfc822 => {
                    set_seen = true;
                    Some(section_request(None, None))
                }
                MessageDataItemName::Rfc822Header => Some(section_request(Some(&Section::Header(None)), None)),
                MessageDataItemName::Rfc822Text => {
                    set_seen = true;
                    Some(section_request(Some(&Section::Text(None)), None))
                }
                MessageDataItemName::Binary { section, partial, peek } => {
                    set_seen |= !peek;
                    Some(binary_request(section, *partial))
                }
                MessageDataItemName::BinarySize { section } => Some(binary_request(section, None)),
                _ => None,
            };
            section_of.push(wanted.map(|section| {
                sections.push(section);
                sections.len() - 1
            }));
        }
        let set_seen = set_seen && !selected.read_only;
        if set_seen && !names.contains(&MessageDataItemName::Flags) {
            names.push(MessageDataItemName::Flags);
            section_of.push(None);
        }
        let request = pb::FetchRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            envelope: names.contains(&MessageDataItemName::Envelope),
            body_structure: names
                .iter()
                .any(|n| matches!(n, MessageDataItemName::Body | MessageDataItemName::BodyStructure)),
            sections,
            changed_since,
            set_seen,
            preview: ids.preview,
        };
        let mut stream = match self.store.fetch(request).await {
            Ok(reply) => reply,
            Err(status) => return refusal(tag, &status),
        };
        let mut current: Option<(pb::FetchedMessage, Vec<Vec<u8>>)> = None;
        let mut unknown_cte = false;
        loop {
            let item = match futures::StreamExt::next(&mut stream).await {
                None => None,
                Some(Ok(item)) => Some(item),
                Some(Err(status)) => return refusal(tag, &status),
            };
            match item.and_then(|i| i.item) {
                Some(pb::fetch_response::Item::MailboxModseq(modseq)) => {
                    if let Some(selected) = self.state.selected() {
                        selected.saw_modseq(modseq);
                    }
                }
                Some(pb::fetch_response::Item::Chunk(chunk)) => {
                    if let Some((_, data)) = current.as_mut()
                        && let Some(section) = data.get_mut(chunk.section as usize)
                    {
                        section.extend_from_slice(&chunk.data);
                    }
                }
                next => {
                    if let Some((message, data)) = current.take() {
                        let raw = self.emit_fetch(&names, &section_of, ids, message, data);
                        if let Err(error) = self.pump().await {
                            tracing::debug!(%error, "client went away during FETCH");
                            return no(tag, None, "connection lost");
                        }
                        if let Some(raw) = raw {
                            self.wire.output().extend_from_slice(&raw);
                        }
                    }
                    match next {
                        Some(pb::fetch_response::Item::Message(message)) => {
                            let count = message.section_sizes.len();
                            unknown_cte |= message.section_sizes.contains(&-2);
                            current = Some((message, vec![Vec::new(); count]));
                        }
                        _ => break,
                    }
                }
            }
        }
        if unknown_cte {
            // RFC 3516 §4.2: a transfer encoding BINARY cannot undo fails the FETCH.
            return no(tag, Some(Code::UnknownCte), "a part's Content-Transfer-Encoding cannot be decoded");
        }
        if ghosts {
            // RFC 5530: the client asked for messages it does not know are gone; the rest were sent.
            return ok(tag, Some(other_code("EXPUNGEISSUED")), "some of the messages were expunged");
        }
        ok(tag, None, "FETCH completed")
    }

    pub(super) fn emit_fetch(
        &mut self,
        names: &[MessageDataItemName<'static>],
        section_of: &[Option<usize>],
        ids: object_id::ObjectIds,
        message: pb::FetchedMessage,
        mut data: Vec<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let selected = self.state.selected()?;
        let index = selected.uids.binary_search(&message.uid).ok()?;
        if names.contains(&MessageDataItemName::Flags) {
            announce_new_keywords(selected, &message.flags, &mut self.server);
        }
        let recent = selected.recent.contains(message.uid);
        let mut items = Vec::with_capacity(names.len());
        for (name, section) in names.iter().zip(section_of) {
            let take = |data: &mut Vec<Vec<u8>>| section.map(|i| std::mem::take(&mut data[i])).unwrap_or_default();
            let item = match name {
                MessageDataItemName::Uid => MessageDataItem::Uid(nz(message.uid)),
                MessageDataItemName::Flags => MessageDataItem::Flags(flags_of(&message.flags, recent)),
                MessageDataItemName::InternalDate => {
                    MessageDataItem::InternalDate(render::date_time(message.internal_date_unix))
                }
                MessageDataItemName::Rfc822Size => {
                    MessageDataItem::Rfc822Size(message.size.min(u64::from(u32::MAX)) as u32)
                }
                MessageDataItemName::Envelope => {
                    MessageDataItem::Envelope(render::envelope(&message.envelope.clone().unwrap_or_default()))
                }
                MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                    let extended = matches!(name, MessageDataItemName::BodyStructure);
                    let structure =
                        render::body_structure(&message.body_structure.clone().unwrap_or_default(), extended);
                    if extended { MessageDataItem::BodyStructure(structure) } else { MessageDataItem::Body(structure) }
                }
                MessageDataItemName::BodyExt { section: wanted, partial, .. } => MessageDataItem::BodyExt {
                    section: wanted.clone(),
                    origin: partial.map(|(start, _)| start),
                    data: render::literal(take(&mut data)),
                },
                MessageDataItemName::Binary { section: part, .. } => {
                    use imap_types::core::{LiteralMode, NString8};
                    use imap_types::extensions::binary::Literal8;
                    let data = take(&mut data);
                    MessageDataItem::Binary {
                        section: part.clone(),
                        value: NString8::Literal8(Literal8 { data: data.into(), mode: LiteralMode::Sync }),
                    }
                }
                MessageDataItemName::BinarySize { section: part } => MessageDataItem::BinarySize {
                    section: part.clone(),
                    size: take(&mut data).len().min(u32::MAX as usize) as u32,
                },
                MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(render::literal(take(&mut data))),
                MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(render::literal(take(&mut data))),
                MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(render::literal(take(&mut data))),
                MessageDataItemName::ModSeq => match NonZeroU64::new(message.modseq) {
                    Some(modseq) => MessageDataItem::ModSeq(modseq),
                    None => continue,
                },
            };
            items.push(item);
        }
        let seq = nz(index as u32 + 1);
        // RFC 3516 §4.2: a partial BINARY names its origin, which imap-types cannot write.
        let origins: Vec<Option<u32>> = names
            .iter()
            .filter_map(|name| match name {
                MessageDataItemName::Binary { partial, .. } => Some(partial.map(|(start, _)| start)),
                _ => None,
            })
            .collect();
        let partial_binary = origins.iter().any(Option::is_some);
        if ids.email || ids.thread || ids.preview || ids.savedate || partial_binary {
            // RFC 8474 §5's EMAILID and THREADID, RFC 8970's PREVIEW and RFC 8514's SAVEDATE, which
            // imap-types cannot write, added to what it writes.
            let preview = message.preview.as_deref().unwrap_or_default();
            let mut added = object_id::fetch_items(ids, message.email_id, message.thread_id, preview);
            if ids.savedate {
                let space = if added.is_empty() { "" } else { " " };
                added = format!("{added}{space}{}", savedate::fetch_item(message.saved_unix));
            }
            return Some(match Vec1::try_from(items) {
                Ok(items) => {
                    let line = ResponseCodec::default().encode(&Response::Data(Data::Fetch { seq, items })).dump();
                    let line = if partial_binary { binary_origin::name_origins(line, &origins) } else { line };
                    if added.is_empty() { line } else { object_id::splice(line, &added) }
                }
                Err(_) => format!("* {seq} FETCH ({added})\r\n").into_bytes(),
            });
        }
        if let Ok(items) = Vec1::try_from(items) {
            self.server.enqueue_data(Data::Fetch { seq, items });
        }
        None
    }
}

pub(super) fn section_request(section: Option<&Section<'_>>, partial: Option<(u32, NonZeroU32)>) -> pb::Section {
    use pb::SectionText as T;
    let part =
        |p: &Option<Part>| p.as_ref().map(|p| p.0.as_ref().iter().map(|n| n.get()).collect()).unwrap_or_default();
    let fields = |list: &Vec1<imap_types::core::AString<'_>>| {
        list.as_ref().iter().map(|f| String::from_utf8_lossy(f.as_ref()).into_owned()).collect()
    };
    let (part, text, fields) = match section {
        None => (Vec::new(), T::Full, Vec::new()),
        Some(Section::Part(p)) => (p.0.as_ref().iter().map(|n| n.get()).collect(), T::Full, Vec::new()),
        Some(Section::Header(p)) => (part(p), T::Header, Vec::new()),
        Some(Section::HeaderFields(p, list)) => (part(p), T::HeaderFields, fields(list)),
        Some(Section::HeaderFieldsNot(p, list)) => (part(p), T::HeaderFieldsNot, fields(list)),
        Some(Section::Text(p)) => (part(p), T::Text, Vec::new()),
        Some(Section::Mime(p)) => (p.0.as_ref().iter().map(|n| n.get()).collect(), T::Mime, Vec::new()),
    };
    pb::Section {
        part,
        text: text.into(),
        fields,
        offset: partial.map(|(start, _)| u64::from(start)),
        length: partial.map(|(_, length)| u64::from(length.get())),
        decode: false,
    }
}

/// RFC 3516 BINARY[part]<partial> and BINARY.SIZE[part]: the part's body, transfer encoding undone.
fn binary_request(part: &[NonZeroU32], partial: Option<(u32, NonZeroU32)>) -> pb::Section {
    pb::Section { part: part.iter().map(|n| n.get()).collect(), decode: true, ..section_request(None, partial) }
}
