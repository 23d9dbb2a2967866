//! RFC 8621 §2 Mailbox: the account's mailboxes as JMAP sees them. A mailbox's parent is the mailbox whose
//! name is its name up to the last `/`, its `name` the last level, its role its SPECIAL-USE attribute
//! (RFC 6154) or `inbox`. Creating, renaming and deleting go through `store::mailboxes`, as IMAP's do, and
//! publish the same events afterwards, so that IMAP sessions see JMAP's changes.

use std::collections::{HashMap, HashSet};

use mailbus_address::MailboxName;
use mailbus_proto::v1::MailboxEventKind;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::get::{self, GetArgs};
use super::query::{self, Comparator, Filter, Page, QueryChangesArgs};
use super::set::{SetArgs, SetError, SetResponse};
use super::{Ctx, MethodError, Responses, changes, ids, one};
use crate::error::MailboxError;
use crate::store::mailboxes::{self as store, RenameOutcome};

const SEPARATOR: char = MailboxName::SEPARATOR;

/// JMAP roles (RFC 8621 §2, the IANA registry of RFC 8457) with their SPECIAL-USE attributes, in the order
/// their mailboxes sort after INBOX (as Fastmail lists them).
const ROLES: &[(&str, &str)] = &[
    ("drafts", "\\Drafts"),
    ("sent", "\\Sent"),
    ("archive", "\\Archive"),
    ("junk", "\\Junk"),
    ("trash", "\\Trash"),
    ("all", "\\All"),
    ("flagged", "\\Flagged"),
];

/// The counts changed (RFC 8621 §2.2 updatedProperties) when only messages came, went or changed flags.
const COUNTS: [&str; 4] = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"];

/// Properties the server sets: a create or update naming them is invalidProperties.
const SERVER_SET: &[&str] = &["id", "totalEmails", "unreadEmails", "totalThreads", "unreadThreads", "myRights"];

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    special_use: Option<String>,
    /// The client's sortOrder; None for the default.
    sort_order: Option<i32>,
    subscribed: bool,
    total_emails: i64,
    unread_emails: i64,
    total_threads: i64,
    unread_threads: i64,
}

impl Row {
    fn is_inbox(&self) -> bool {
        self.name == MailboxName::INBOX
    }

    /// The last level of the name.
    fn leaf(&self) -> &str {
        self.name.rsplit_once(SEPARATOR).map_or(&self.name, |(_, leaf)| leaf)
    }

    fn parent_name(&self) -> Option<&str> {
        self.name.rsplit_once(SEPARATOR).map(|(parent, _)| parent)
    }

    fn role(&self) -> Option<&'static str> {
        role_of(&self.name, self.special_use.as_deref())
    }

    /// sortOrder: the client's, else the default for the role.
    fn sort_order(&self) -> u32 {
        self.sort_order.and_then(|n| u32::try_from(n).ok()).unwrap_or_else(|| default_sort_order(self.role()))
    }
}

fn role_of(name: &str, special_use: Option<&str>) -> Option<&'static str> {
    if name == MailboxName::INBOX {
        return Some("inbox");
    }
    let special_use = special_use?;
    ROLES.iter().find(|(_, attribute)| attribute.eq_ignore_ascii_case(special_use)).map(|(role, _)| *role)
}

/// The sortOrder of a mailbox the client gave none: INBOX first, then the roles in their order, then every
/// other mailbox (RFC 8621 §2: lower sorts first).
fn default_sort_order(role: Option<&str>) -> u32 {
    match role {
        Some("inbox") => 1,
        Some(role) => ROLES.iter().position(|(r, _)| *r == role).map_or(100, |i| i as u32 + 2),
        None => 100,
    }
}

/// RFC 8621 §2 MailboxRights: the account owns every mailbox; INBOX can be neither renamed nor deleted.
fn rights(inbox: bool) -> Value {
    json!({
        "mayReadItems": true,
        "mayAddItems": true,
        "mayRemoveItems": true,
        "maySetSeen": true,
        "maySetKeywords": true,
        "mayCreateChild": true,
        "mayRename": !inbox,
        "mayDelete": !inbox,
        "maySubmit": true,
    })
}

/// RFC 8621 §2: unread is neither `$seen` nor `$draft`; a thread counts as unread in a mailbox when one of
/// its emails there is.
const LOAD_WITH_COUNTS: &str = "
    SELECT mb.id, mb.name, mb.special_use, mb.sort_order,
           EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mb.account_id AND s.name = mb.name)
               AS subscribed,
           count(DISTINCT e.message_id) AS total_emails,
           count(DISTINCT e.message_id) FILTER (WHERE NOT e.flags && ARRAY['\\Seen', '\\Draft']) AS unread_emails,
           count(DISTINCT m.thread_id) AS total_threads,
           count(DISTINCT m.thread_id) FILTER (WHERE NOT e.flags && ARRAY['\\Seen', '\\Draft']) AS unread_threads
      FROM mailboxes mb
      LEFT JOIN mailbox_entries e ON e.mailbox_id = mb.id AND e.expunged_modseq IS NULL
      LEFT JOIN messages m ON m.id = e.message_id
     WHERE mb.account_id = $1
     GROUP BY mb.id
     ORDER BY mb.name";

/// The email counts alone: the thread counts need every entry's message (its thread), which costs several
/// times more, so they are worked out only when asked for.
const LOAD_WITH_EMAIL_COUNTS: &str = "
    SELECT mb.id, mb.name, mb.special_use, mb.sort_order,
           EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mb.account_id AND s.name = mb.name)
               AS subscribed,
           count(DISTINCT e.message_id) AS total_emails,
           count(DISTINCT e.message_id) FILTER (WHERE NOT e.flags && ARRAY['\\Seen', '\\Draft']) AS unread_emails,
           0::bigint AS total_threads, 0::bigint AS unread_threads
      FROM mailboxes mb
      LEFT JOIN mailbox_entries e ON e.mailbox_id = mb.id AND e.expunged_modseq IS NULL
     WHERE mb.account_id = $1
     GROUP BY mb.id
     ORDER BY mb.name";

const LOAD: &str = "
    SELECT mb.id, mb.name, mb.special_use, mb.sort_order,
           EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mb.account_id AND s.name = mb.name)
               AS subscribed,
           0::bigint AS total_emails, 0::bigint AS unread_emails, 0::bigint AS total_threads,
           0::bigint AS unread_threads
      FROM mailboxes mb
     WHERE mb.account_id = $1
     ORDER BY mb.name";

/// Which counts a load works out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    None,
    Emails,
    EmailsAndThreads,
}

impl Counts {
    /// What `Mailbox/get`'s properties need (all of them when it names none).
    fn for_properties(properties: Option<&[String]>) -> Counts {
        let asked = |name: &str| properties.is_none_or(|list| list.iter().any(|p| p == name));
        if asked("totalThreads") || asked("unreadThreads") {
            Counts::EmailsAndThreads
        } else if asked("totalEmails") || asked("unreadEmails") {
            Counts::Emails
        } else {
            Counts::None
        }
    }
}

async fn load(ctx: &Ctx<'_>, counts: Counts) -> Result<Vec<Row>, MethodError> {
    let query = match counts {
        Counts::EmailsAndThreads => LOAD_WITH_COUNTS,
        Counts::Emails => LOAD_WITH_EMAIL_COUNTS,
        Counts::None => LOAD,
    };
    Ok(sqlx::query_as(query).bind(ctx.account.get()).fetch_all(ctx.pool).await?)
}

/// Mailbox ids by name.
fn ids_by_name(rows: &[Row]) -> HashMap<&str, i64> {
    rows.iter().map(|r| (r.name.as_str(), r.id)).collect()
}

fn id(row_id: i64) -> String {
    ids::encode(ids::MAILBOX, row_id)
}

fn object(row: &Row, by_name: &HashMap<&str, i64>) -> Map<String, Value> {
    let role = row.role();
    let parent = row.parent_name().and_then(|p| by_name.get(p)).map(|&p| id(p));
    let object = json!({
        "id": id(row.id),
        "name": row.leaf(),
        "parentId": parent,
        "role": role,
        "sortOrder": row.sort_order(),
        "totalEmails": row.total_emails,
        "unreadEmails": row.unread_emails,
        "totalThreads": row.total_threads,
        "unreadThreads": row.unread_threads,
        "myRights": rights(row.is_inbox()),
        "isSubscribed": row.subscribed,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args = GetArgs::parse(arguments)?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let rows = load(ctx, Counts::for_properties(args.properties.as_deref())).await?;
    let by_name = ids_by_name(&rows);
    let (list, not_found) = match &args.ids {
        None => (rows.iter().map(|r| args.pick(object(r, &by_name))).collect(), Vec::new()),
        Some(wanted) => {
            let by_id: HashMap<String, &Row> = rows.iter().map(|r| (id(r.id), r)).collect();
            let mut list = Vec::new();
            let mut not_found = Vec::new();
            for wanted in wanted {
                match by_id.get(ctx.resolve(wanted).unwrap_or(wanted)) {
                    Some(row) => list.push(args.pick(object(row, &by_name))),
                    None => not_found.push(wanted.clone()),
                }
            }
            (list, not_found)
        }
    };
    one("Mailbox/get", get::response(ctx.account_id(), state, list, not_found))
}

pub async fn changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let (mut response, set) = changes::respond(ctx, changes::MAILBOX, arguments, id).await?;
    response["updatedProperties"] =
        if set.counts_only && !set.updated.is_empty() { json!(COUNTS) } else { Value::Null };
    one("Mailbox/changes", response)
}

/// The query's filter and sort, shared by `/query` and `/queryChanges`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Search {
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    sort: Option<Vec<Comparator>>,
    #[serde(default)]
    sort_as_tree: bool,
    #[serde(default)]
    filter_as_tree: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryArgs {
    #[serde(flatten)]
    search: Search,
    #[serde(flatten)]
    page: Page,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryChangesAll {
    #[serde(flatten)]
    search: Search,
    #[serde(flatten)]
    changes: QueryChangesArgs,
}

/// RFC 8621 §2.3 FilterCondition: each property given must match.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// `None`: top-level mailboxes.
    ParentId(Option<String>),
    /// Case-insensitive substring of the name.
    Name(String),
    Role(Option<String>),
    HasAnyRole(bool),
    IsSubscribed(bool),
}

fn condition(object: &Map<String, Value>) -> Result<Vec<Condition>, MethodError> {
    query::known_properties(object, &["parentId", "name", "role", "hasAnyRole", "isSubscribed"])?;
    let bad = |what: &str| MethodError::InvalidArguments(format!("filter {what} has the wrong type"));
    object
        .iter()
        .map(|(key, value)| match key.as_str() {
            "parentId" => match value {
                Value::Null => Ok(Condition::ParentId(None)),
                Value::String(parent) => Ok(Condition::ParentId(Some(parent.clone()))),
                _ => Err(bad(key)),
            },
            "name" => value.as_str().map(|n| Condition::Name(n.to_lowercase())).ok_or_else(|| bad(key)),
            "role" => match value {
                Value::Null => Ok(Condition::Role(None)),
                Value::String(role) => Ok(Condition::Role(Some(role.clone()))),
                _ => Err(bad(key)),
            },
            "hasAnyRole" => value.as_bool().map(Condition::HasAnyRole).ok_or_else(|| bad(key)),
            _ => value.as_bool().map(Condition::IsSubscribed).ok_or_else(|| bad(key)),
        })
        .collect()
}

fn matches(condition: &Condition, row: &Row, parent: Option<&String>) -> bool {
    match condition {
        Condition::ParentId(wanted) => wanted.as_ref() == parent,
        Condition::Name(part) => row.leaf().to_lowercase().contains(part.as_str()),
        Condition::Role(wanted) => wanted.as_deref() == row.role(),
        Condition::HasAnyRole(any) => row.role().is_some() == *any,
        Condition::IsSubscribed(subscribed) => row.subscribed == *subscribed,
    }
}

/// The ids of every mailbox the search selects, in its order (RFC 8621 §2.3 sortAsTree, filterAsTree).
fn search(ctx: &Ctx<'_>, rows: &[Row], search: &Search) -> Result<Vec<String>, MethodError> {
    let filter = Filter::parse(search.filter.as_ref(), &condition)?;
    let comparators = search.sort.clone().unwrap_or_default();
    for comparator in &comparators {
        if !matches!(comparator.property.as_str(), "name" | "sortOrder") {
            return Err(MethodError::UnsupportedSort(comparator.property.clone()));
        }
    }
    let by_name = ids_by_name(rows);
    let parent_of: HashMap<i64, Option<String>> =
        rows.iter().map(|r| (r.id, r.parent_name().and_then(|p| by_name.get(p)).map(|&p| id(p)))).collect();
    // A parentId condition may name a mailbox created earlier in the request.
    let resolve = |c: &Condition| match c {
        Condition::ParentId(Some(parent)) => {
            Condition::ParentId(Some(ctx.resolve(parent).unwrap_or(parent).to_owned()))
        }
        other => other.clone(),
    };
    let selected: HashSet<i64> = rows
        .iter()
        .filter(|row| {
            filter.as_ref().is_none_or(|f| {
                f.matches(&|all: &Vec<Condition>| {
                    all.iter().all(|c| matches(&resolve(c), row, parent_of[&row.id].as_ref()))
                })
            })
        })
        .map(|r| r.id)
        .collect();
    let kept: HashSet<i64> = if search.filter_as_tree {
        // A mailbox is in the results only when its ancestors are too.
        rows.iter()
            .filter(|row| {
                selected.contains(&row.id)
                    && row
                        .name
                        .match_indices(SEPARATOR)
                        .all(|(at, _)| by_name.get(&row.name[..at]).is_none_or(|ancestor| selected.contains(ancestor)))
            })
            .map(|r| r.id)
            .collect()
    } else {
        selected
    };
    let order = |a: &&Row, b: &&Row| {
        for comparator in &comparators {
            let ordering = match comparator.property.as_str() {
                "name" => a.leaf().to_lowercase().cmp(&b.leaf().to_lowercase()),
                _ => a.sort_order().cmp(&b.sort_order()),
            };
            let ordering = if comparator.is_ascending { ordering } else { ordering.reverse() };
            if ordering.is_ne() {
                return ordering;
            }
        }
        (a.sort_order(), &a.name).cmp(&(b.sort_order(), &b.name))
    };
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(order);
    if !search.sort_as_tree {
        return Ok(sorted.into_iter().filter(|r| kept.contains(&r.id)).map(|r| id(r.id)).collect());
    }
    // Depth first from the top, siblings in the sort's order, so every mailbox follows its parent.
    let mut children: HashMap<Option<String>, Vec<&Row>> = HashMap::new();
    for row in sorted {
        children.entry(parent_of[&row.id].clone()).or_default().push(row);
    }
    let mut out = Vec::new();
    let mut stack: Vec<&Row> = children.get(&None).map(|c| c.iter().rev().copied().collect()).unwrap_or_default();
    while let Some(row) = stack.pop() {
        if kept.contains(&row.id) {
            out.push(id(row.id));
        }
        if let Some(below) = children.get(&Some(id(row.id))) {
            stack.extend(below.iter().rev().copied());
        }
    }
    Ok(out)
}

pub async fn query(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryArgs = super::arguments(arguments)?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let rows = load(ctx, Counts::None).await?;
    let found = search(ctx, &rows, &args.search)?;
    one("Mailbox/query", args.page.respond(ctx.account_id(), state, found)?)
}

pub async fn query_changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryChangesAll = super::arguments(arguments)?;
    let rows = load(ctx, Counts::None).await?;
    let found = search(ctx, &rows, &args.search)?;
    one("Mailbox/queryChanges", query::changes(ctx, changes::MAILBOX, &args.changes, &found, id).await?)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailboxSetArgs {
    #[serde(flatten)]
    set: SetArgs,
    #[serde(default)]
    on_destroy_remove_emails: bool,
}

pub async fn set(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: MailboxSetArgs = super::arguments(arguments)?;
    let old_state = args.set.check(ctx).await?;
    let mut response = SetResponse::default();
    if let Some(create) = args.set.create {
        create_all(ctx, create, &mut response).await?;
    }
    for (given, patch) in args.set.update.unwrap_or_default() {
        let resolved = ctx.resolve(&given).map(str::to_owned);
        let outcome = match resolved {
            Ok(resolved) => update(ctx, &resolved, &patch).await?,
            Err(_) => Err(SetError::not_found()),
        };
        match outcome {
            Ok(()) => response.updated(&given, None),
            Err(error) => response.not_updated(&given, error),
        }
    }
    if let Some(destroy) = args.set.destroy {
        destroy_all(ctx, destroy, args.on_destroy_remove_emails, &mut response).await?;
    }
    let new_state = super::state(ctx.pool, ctx.account).await?;
    one("Mailbox/set", response.into_json(ctx.account_id(), old_state, new_state))
}

/// Creates in an order where every `#parent` reference is made before it is needed (RFC 8620 §5.3: the
/// client may list them in any order).
async fn create_all(
    ctx: &mut Ctx<'_>,
    create: Map<String, Value>,
    response: &mut SetResponse,
) -> Result<(), MethodError> {
    let mut pending: Vec<(String, Value)> = create.into_iter().collect();
    loop {
        let waiting: HashSet<String> = pending.iter().map(|(c, _)| c.clone()).collect();
        let (ready, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, props)| {
            let parent = props.get("parentId").and_then(Value::as_str).and_then(|p| p.strip_prefix('#'));
            parent.is_none_or(|p| !waiting.contains(p))
        });
        if ready.is_empty() {
            for (creation_id, _) in later {
                let error = SetError::invalid(&["parentId"], "the parent's creation refers back to this one");
                response.not_created(&creation_id, error);
            }
            return Ok(());
        }
        for (creation_id, props) in ready {
            match create_one(ctx, &props).await? {
                Ok(created) => {
                    if let Some(id) = created["id"].as_str() {
                        ctx.created_ids.insert(creation_id.clone(), id.to_owned());
                    }
                    response.created(&creation_id, created);
                }
                Err(error) => response.not_created(&creation_id, error),
            }
        }
        if later.is_empty() {
            return Ok(());
        }
        pending = later;
    }
}

/// Refuses a property no client may set, or one Mailbox does not have.
fn settable(props: &Map<String, Value>) -> Result<(), SetError> {
    for key in props.keys() {
        if SERVER_SET.contains(&key.as_str()) {
            return Err(SetError::invalid(&[key], format!("{key} is set by the server")));
        }
        if !matches!(key.as_str(), "name" | "parentId" | "role" | "isSubscribed" | "sortOrder") {
            return Err(SetError::invalid(&[key], format!("Mailbox has no property {key}")));
        }
    }
    Ok(())
}

/// The full name of a mailbox called `leaf` below `parent` (a full name, or the top).
fn full_name(parent: Option<&str>, leaf: &str) -> Result<MailboxName, SetError> {
    if leaf.is_empty() || leaf.contains(SEPARATOR) {
        return Err(SetError::invalid(&["name"], format!("a name is not empty and has no {SEPARATOR:?}")));
    }
    let full = match parent {
        Some(parent) => format!("{parent}{SEPARATOR}{leaf}"),
        None => leaf.to_owned(),
    };
    full.parse().map_err(|e| SetError::invalid(&["name"], format!("{e}")))
}

/// The full name of the mailbox a `parentId` value names: `None` for null (the top).
async fn parent_name(ctx: &Ctx<'_>, value: &Value) -> Result<Result<Option<String>, SetError>, MethodError> {
    let given = match value {
        Value::Null => return Ok(Ok(None)),
        Value::String(given) => given,
        _ => return Ok(Err(SetError::invalid(&["parentId"], "parentId is an id or null"))),
    };
    let Ok(resolved) = ctx.resolve(given) else {
        return Ok(Err(SetError::invalid(&["parentId"], format!("no mailbox was created as {given}"))));
    };
    let found = match ids::decode(ids::MAILBOX, resolved) {
        Some(row_id) => find(ctx, row_id).await?,
        None => None,
    };
    Ok(found.map(|(name, _)| Some(name)).ok_or_else(|| SetError::invalid(&["parentId"], "no such mailbox")))
}

/// A role's SPECIAL-USE attribute; INBOX's role is its name's alone.
fn special_use(value: &Value) -> Result<Option<&'static str>, SetError> {
    match value {
        Value::Null => Ok(None),
        Value::String(role) => ROLES
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, attribute)| Some(*attribute))
            .ok_or_else(|| SetError::invalid(&["role"], format!("role {role} cannot be given to a mailbox"))),
        _ => Err(SetError::invalid(&["role"], "role is a string or null")),
    }
}

/// A store error that is the client's doing, as the SetError it gets.
fn refusal(error: MailboxError) -> Result<SetError, MethodError> {
    Ok(match error {
        MailboxError::SpecialUseTaken(attribute) => {
            SetError::invalid(&["role"], format!("a mailbox with {attribute} already exists"))
        }
        MailboxError::AlreadyExists(what) => SetError::invalid(&["name"], format!("{what} already exists")),
        MailboxError::InvalidArgument(why) => SetError::invalid(&["name", "parentId"], why),
        MailboxError::NotFound(_) => SetError::not_found(),
        MailboxError::HasChildren(_) => SetError::new("mailboxHasChild"),
        MailboxError::FailedPrecondition(why) => SetError::forbidden(why),
        MailboxError::OverQuota(why) => SetError::new("overQuota").describe(why),
        other => return Err(other.into()),
    })
}

async fn create_one(ctx: &Ctx<'_>, props: &Value) -> Result<Result<Value, SetError>, MethodError> {
    let Some(props) = props.as_object() else {
        return Ok(Err(SetError::invalid(&[], "a Mailbox is an object")));
    };
    if let Err(error) = settable(props) {
        return Ok(Err(error));
    }
    let Some(leaf) = props.get("name").and_then(Value::as_str) else {
        return Ok(Err(SetError::invalid(&["name"], "name is required")));
    };
    let parent = match parent_name(ctx, props.get("parentId").unwrap_or(&Value::Null)).await? {
        Ok(parent) => parent,
        Err(error) => return Ok(Err(error)),
    };
    let name = match full_name(parent.as_deref(), leaf) {
        Ok(name) => name,
        Err(error) => return Ok(Err(error)),
    };
    let special_use = match special_use(props.get("role").unwrap_or(&Value::Null)) {
        Ok(special_use) => special_use,
        Err(error) => return Ok(Err(error)),
    };
    let subscribed = match props.get("isSubscribed").unwrap_or(&Value::Bool(false)) {
        Value::Bool(subscribed) => *subscribed,
        _ => return Ok(Err(SetError::invalid(&["isSubscribed"], "isSubscribed is a boolean"))),
    };
    let role = role_of(name.as_str(), special_use);
    let order = match props.get("sortOrder").map(sort_order_given).transpose() {
        Ok(order) => order,
        Err(error) => return Ok(Err(error)),
    };
    if let Err(error) = store::create(ctx.pool, ctx.account, &name, special_use.unwrap_or_default()).await {
        return refusal(error).map(Err);
    }
    ctx.events.publish_hierarchy(ctx.account, &name, MailboxEventKind::Created, None);
    let row_id: i64 = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2")
        .bind(ctx.account.get())
        .bind(name.as_str())
        .fetch_one(ctx.pool)
        .await?;
    if subscribed {
        store::subscribe(ctx.pool, ctx.account, &name, true).await?;
        ctx.events.publish_subscription(ctx.account, &name, true);
    }
    if let Some(order) = order {
        set_sort_order(ctx, row_id, order).await?;
    }
    Ok(Ok(json!({
        "id": id(row_id),
        "role": role,
        "sortOrder": order.map_or(default_sort_order(role), i32::unsigned_abs),
        "isSubscribed": subscribed,
        "totalEmails": 0,
        "unreadEmails": 0,
        "totalThreads": 0,
        "unreadThreads": 0,
        "myRights": rights(false),
    })))
}

/// A mailbox's name and SPECIAL-USE attribute by id, if it is the account's.
async fn find(ctx: &Ctx<'_>, row_id: i64) -> Result<Option<(String, Option<String>)>, MethodError> {
    Ok(sqlx::query_as("SELECT name, special_use FROM mailboxes WHERE account_id = $1 AND id = $2")
        .bind(ctx.account.get())
        .bind(row_id)
        .fetch_optional(ctx.pool)
        .await?)
}

/// What an update asks for, checked before anything is changed.
#[derive(Debug, Default)]
struct Patch {
    leaf: Option<String>,
    /// `Some(None)`: to the top.
    parent: Option<Option<String>>,
    role: Option<Option<&'static str>>,
    subscribed: Option<bool>,
    sort_order: Option<i32>,
}

async fn patch(ctx: &Ctx<'_>, props: &Map<String, Value>) -> Result<Result<Patch, SetError>, MethodError> {
    if let Err(error) = settable(props) {
        return Ok(Err(error));
    }
    let mut patch = Patch::default();
    for (key, value) in props {
        match key.as_str() {
            "name" => match value.as_str() {
                Some(leaf) => patch.leaf = Some(leaf.to_owned()),
                None => return Ok(Err(SetError::invalid(&["name"], "name is a string"))),
            },
            "parentId" => match parent_name(ctx, value).await? {
                Ok(parent) => patch.parent = Some(parent),
                Err(error) => return Ok(Err(error)),
            },
            "role" => match special_use(value) {
                Ok(special_use) => patch.role = Some(special_use),
                Err(error) => return Ok(Err(error)),
            },
            "isSubscribed" => match value.as_bool() {
                Some(subscribed) => patch.subscribed = Some(subscribed),
                None => return Ok(Err(SetError::invalid(&["isSubscribed"], "isSubscribed is a boolean"))),
            },
            "sortOrder" => match sort_order_given(value) {
                Ok(order) => patch.sort_order = Some(order),
                Err(error) => return Ok(Err(error)),
            },
            _ => {}
        }
    }
    Ok(Ok(patch))
}

async fn update(ctx: &Ctx<'_>, given: &str, props: &Value) -> Result<Result<(), SetError>, MethodError> {
    let Some(props) = props.as_object() else {
        return Ok(Err(SetError::new("invalidPatch").describe("a patch is an object")));
    };
    let found = match ids::decode(ids::MAILBOX, given) {
        Some(row_id) => find(ctx, row_id).await?.map(|found| (row_id, found)),
        None => None,
    };
    let Some((row_id, (current, special))) = found else { return Ok(Err(SetError::not_found())) };
    let patch = match patch(ctx, props).await? {
        Ok(patch) => patch,
        Err(error) => return Ok(Err(error)),
    };
    let current: MailboxName = current.parse().map_err(|e| MethodError::ServerFail(format!("stored name: {e}")))?;
    let mut name = current.clone();
    if patch.leaf.is_some() || patch.parent.is_some() {
        let (parent, leaf) = match current.as_str().rsplit_once(SEPARATOR) {
            Some((parent, leaf)) => (Some(parent.to_owned()), leaf.to_owned()),
            None => (None, current.as_str().to_owned()),
        };
        let wanted = match full_name(
            patch.parent.clone().unwrap_or(parent).as_deref(),
            patch.leaf.as_deref().unwrap_or(&leaf),
        ) {
            Ok(wanted) => wanted,
            Err(error) => return Ok(Err(error)),
        };
        if wanted != current {
            if current.is_inbox() {
                return Ok(Err(SetError::forbidden("INBOX cannot be renamed")));
            }
            match store::rename(ctx.pool, ctx.account, &current, &wanted).await {
                Ok(RenameOutcome::Renamed { from, to }) => {
                    ctx.events.publish_hierarchy(ctx.account, &from, MailboxEventKind::Renamed, Some(&to));
                }
                Ok(RenameOutcome::InboxMoved(_)) => {
                    return Err(MethodError::ServerFail("INBOX was renamed as a move".into()));
                }
                Err(error) => return refusal(error).map(Err),
            }
            name = wanted;
        }
    }
    if let Some(new_role) = patch.role {
        if current.is_inbox() {
            return Ok(Err(SetError::forbidden("INBOX's role is its own")));
        }
        if new_role != special.as_deref()
            && let Err(error) = set_special_use(ctx, row_id, new_role).await
        {
            return refusal(error).map(Err);
        }
    }
    if let Some(subscribed) = patch.subscribed {
        store::subscribe(ctx.pool, ctx.account, &name, subscribed).await?;
        log_update(ctx, row_id).await?;
        ctx.events.publish_subscription(ctx.account, &name, subscribed);
    }
    if let Some(order) = patch.sort_order {
        set_sort_order(ctx, row_id, order).await?;
    }
    Ok(Ok(()))
}

/// RFC 8621 §2 sortOrder as a client gives it: an UnsignedInt, kept below 2^31 (the column's INTEGER).
fn sort_order_given(value: &Value) -> Result<i32, SetError> {
    value
        .as_u64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| SetError::invalid(&["sortOrder"], "sortOrder is an integer from 0 to 2147483647"))
}

/// Stores a mailbox's sortOrder; the table's trigger logs the change (migration 0006).
async fn set_sort_order(ctx: &Ctx<'_>, row_id: i64, order: i32) -> Result<(), MethodError> {
    sqlx::query("UPDATE mailboxes SET sort_order = $3 WHERE account_id = $1 AND id = $2")
        .bind(ctx.account.get())
        .bind(row_id)
        .bind(order)
        .execute(ctx.pool)
        .await?;
    Ok(())
}

async fn set_special_use(ctx: &Ctx<'_>, row_id: i64, special_use: Option<&str>) -> Result<(), MailboxError> {
    sqlx::query("UPDATE mailboxes SET special_use = $3 WHERE account_id = $1 AND id = $2")
        .bind(ctx.account.get())
        .bind(row_id)
        .bind(special_use)
        .execute(ctx.pool)
        .await
        .map_err(|e| match MailboxError::from(e) {
            MailboxError::AlreadyExists(_) => MailboxError::SpecialUseTaken(special_use.unwrap_or_default().to_owned()),
            other => other,
        })?;
    Ok(())
}

/// A subscription is a name apart from the mailbox row, so no trigger sees it change: JMAP's isSubscribed
/// is the mailbox's property, and its change is logged here.
async fn log_update(ctx: &Ctx<'_>, row_id: i64) -> Result<(), MethodError> {
    sqlx::query(
        "INSERT INTO changes (account_id, seq, kind, object_id, op)
         SELECT $1, seq, 'M', $2, 'u' FROM mailbus_next_change($1) AS seq WHERE seq IS NOT NULL",
    )
    .bind(ctx.account.get())
    .bind(row_id)
    .execute(ctx.pool)
    .await?;
    Ok(())
}

/// Destroys children before their parents when both are asked for.
async fn destroy_all(
    ctx: &mut Ctx<'_>,
    destroy: Vec<String>,
    remove_emails: bool,
    response: &mut SetResponse,
) -> Result<(), MethodError> {
    let mut targets: Vec<(String, Option<(i64, String)>)> = Vec::new();
    for given in destroy {
        let row_id = ctx.resolve(&given).ok().and_then(|resolved| ids::decode(ids::MAILBOX, resolved));
        let found = match row_id {
            Some(row_id) => find(ctx, row_id).await?.map(|(name, _)| (row_id, name)),
            None => None,
        };
        targets.push((given, found));
    }
    targets
        .sort_by_key(|(_, found)| std::cmp::Reverse(found.as_ref().map_or(0, |(_, n)| n.matches(SEPARATOR).count())));
    for (given, found) in targets {
        let Some((row_id, name)) = found else {
            response.not_destroyed(&given, SetError::not_found());
            continue;
        };
        match destroy_one(ctx, row_id, &name, remove_emails).await? {
            Ok(()) => response.destroyed.push(given),
            Err(error) => response.not_destroyed(&given, error),
        }
    }
    Ok(())
}

async fn destroy_one(
    ctx: &Ctx<'_>,
    row_id: i64,
    name: &str,
    remove_emails: bool,
) -> Result<Result<(), SetError>, MethodError> {
    let name: MailboxName = name.parse().map_err(|e| MethodError::ServerFail(format!("stored name: {e}")))?;
    if name.is_inbox() {
        return Ok(Err(SetError::forbidden("INBOX cannot be destroyed")));
    }
    if !remove_emails {
        let holds: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM mailbox_entries WHERE mailbox_id = $1 AND expunged_modseq IS NULL)",
        )
        .bind(row_id)
        .fetch_one(ctx.pool)
        .await?;
        if holds {
            return Ok(Err(SetError::new("mailboxHasEmail")));
        }
    }
    match store::delete(ctx.pool, ctx.account, &name).await {
        Ok(()) => {
            ctx.events.publish_hierarchy(ctx.account, &name, MailboxEventKind::Deleted, None);
            Ok(Ok(()))
        }
        Err(error) => refusal(error).map(Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str, special_use: Option<&str>) -> Row {
        Row {
            id,
            name: name.into(),
            special_use: special_use.map(Into::into),
            sort_order: None,
            subscribed: false,
            total_emails: 0,
            unread_emails: 0,
            total_threads: 0,
            unread_threads: 0,
        }
    }

    #[test]
    fn roles_come_from_special_use_and_inbox() {
        assert_eq!(row(1, "INBOX", None).role(), Some("inbox"));
        assert_eq!(row(2, "Sent", Some("\\Sent")).role(), Some("sent"));
        assert_eq!(row(3, "Stuff", None).role(), None);
        assert_eq!(default_sort_order(Some("inbox")), 1);
        assert!(default_sort_order(Some("drafts")) < default_sort_order(Some("trash")));
        assert_eq!(default_sort_order(None), 100);
    }

    #[test]
    fn a_stored_sort_order_wins_over_the_default() {
        let stored = Row { sort_order: Some(7), ..row(6, "Sent", Some("\\Sent")) };
        assert_eq!((row(6, "Sent", Some("\\Sent")).sort_order(), stored.sort_order()), (3, 7));
        assert_eq!(sort_order_given(&json!(0)), Ok(0));
        assert_eq!(sort_order_given(&json!(2_147_483_647)), Ok(i32::MAX));
        for bad in [json!(-1), json!(2_147_483_648u64), json!(1.5), json!("3"), Value::Null] {
            assert_eq!(sort_order_given(&bad).unwrap_err().properties, ["sortOrder"], "{bad}");
        }
    }

    #[test]
    fn the_name_is_the_last_level() {
        let r = row(4, "Work/Projects/Q3", None);
        assert_eq!((r.leaf(), r.parent_name()), ("Q3", Some("Work/Projects")));
        assert!(full_name(Some("Work"), "a/b").is_err());
        assert!(full_name(None, "").is_err());
        assert_eq!(full_name(Some("INBOX"), "x").unwrap().as_str(), "INBOX/x");
    }

    #[test]
    fn inbox_may_be_neither_renamed_nor_deleted() {
        assert_eq!(rights(true)["mayDelete"], json!(false));
        assert_eq!(rights(true)["mayRename"], json!(false));
        assert_eq!(rights(false)["mayDelete"], json!(true));
    }

    #[test]
    fn filter_conditions_are_checked() {
        let cond = |v: Value| condition(v.as_object().unwrap());
        assert_eq!(cond(json!({"parentId": null})).unwrap(), vec![Condition::ParentId(None)]);
        assert!(matches!(cond(json!({"color": "red"})), Err(MethodError::UnsupportedFilter(_))));
        assert!(matches!(cond(json!({"hasAnyRole": "yes"})), Err(MethodError::InvalidArguments(_))));
        let r = row(5, "Work/Reports", None);
        assert!(matches(&Condition::Name("port".into()), &r, None));
        assert!(!matches(&Condition::HasAnyRole(true), &r, None));
    }
}
