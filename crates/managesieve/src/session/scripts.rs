//! The commands on scripts (RFC 5804 §2.3, §2.5–§2.13): each becomes a [`Request`] for the mailbox role,
//! and its [`Answer`] or [`Failure`] becomes the response, with the response codes of §1.3.

use super::{Action, Session, State};
use crate::command::{Command, ScriptName};
use crate::response::{Code, Data, Response, Status};

/// What the connection asks of the account's scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        content: String,
    },
    CheckScript {
        content: String,
    },
    ListScripts,
    /// `None` deactivates every script.
    SetActive {
        name: Option<String>,
    },
    GetScript {
        name: String,
    },
    DeleteScript {
        name: String,
    },
    RenameScript {
        old_name: String,
        new_name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    pub name: String,
    pub active: bool,
}

/// What a request gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The request was carried out; a stored or checked script may come with warnings.
    Done {
        warnings: Vec<String>,
    },
    Scripts(Vec<ScriptEntry>),
    Script(String),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The script does not parse: the parser's message, with its line and column.
    Invalid(String),
    NonExistent,
    AlreadyExists,
    /// The script to delete is the active one.
    Active,
    /// Over the number of scripts the account may have.
    MaxScripts,
    /// Over the size one script may have.
    MaxSize,
    /// Over the bytes all the account's scripts may take.
    Quota,
    /// The mailbox role could not answer; the client may try again.
    TryLater,
}

impl Session {
    pub(super) fn script_command(&mut self, command: Command) -> Action {
        let request = match command {
            Command::HaveSpace { name, size } => Request::HaveSpace { name: name.into_string(), size },
            Command::PutScript { name, content } => match String::from_utf8(content) {
                Ok(content) => Request::PutScript { name: name.into_string(), content },
                Err(_) => return not_utf8(),
            },
            Command::CheckScript { content } => match String::from_utf8(content) {
                Ok(content) => Request::CheckScript { content },
                Err(_) => return not_utf8(),
            },
            Command::ListScripts => Request::ListScripts,
            Command::SetActive { name } => Request::SetActive { name: name.map(ScriptName::into_string) },
            Command::GetScript { name } => Request::GetScript { name: name.into_string() },
            Command::DeleteScript { name } => Request::DeleteScript { name: name.into_string() },
            Command::RenameScript { old_name, new_name } => {
                Request::RenameScript { old_name: old_name.into_string(), new_name: new_name.into_string() }
            }
            // `Session::command` answers these before it comes here.
            Command::StartTls
            | Command::Authenticate { .. }
            | Command::Unauthenticate
            | Command::Capability
            | Command::Logout
            | Command::Noop { .. } => return Action::Reply(Response::no("not valid in this state")),
        };
        Action::Call(request)
    }

    /// Takes the connection's answer to [`Action::Call`] and gives the response to send.
    pub fn answered(&mut self, result: Result<Answer, Failure>) -> Response {
        let State::Calling(request) = std::mem::replace(&mut self.state, State::Authenticated) else {
            return Response::no("no request in progress");
        };
        match result {
            Ok(answer) => success(&request, answer),
            Err(failure) => refusal(&request, failure),
        }
    }
}

fn success(request: &Request, answer: Answer) -> Response {
    match answer {
        Answer::Scripts(scripts) => {
            let data = scripts.into_iter().map(|script| Data::Script { name: script.name, active: script.active });
            Response::with_data(data.collect(), "Listscripts completed")
        }
        Answer::Script(content) => Response::with_data(vec![Data::Content(content)], "Getscript completed"),
        // §1.3 WARNINGS: the script was stored (or checked) but the server has something to say about it.
        Answer::Done { warnings } if !warnings.is_empty() => {
            Response::status(Status::Ok, Some(Code::Warnings), warnings.join("\r\n"))
        }
        Answer::Done { .. } => Response::ok(match request {
            Request::HaveSpace { .. } => "Putscript would succeed",
            Request::PutScript { .. } => "Putscript completed",
            Request::CheckScript { .. } => "Script is valid",
            Request::SetActive { .. } => "Setactive completed",
            Request::DeleteScript { .. } => "Deletescript completed",
            Request::RenameScript { .. } => "Renamescript completed",
            Request::ListScripts | Request::GetScript { .. } => "Completed",
        }),
    }
}

fn refusal(request: &Request, failure: Failure) -> Response {
    let (code, text) = match failure {
        // §2.6: the human-readable text of the NO is the parse error.
        Failure::Invalid(message) => (None, message),
        Failure::NonExistent => (Some(Code::NonExistent), nonexistent(request)),
        Failure::AlreadyExists => (Some(Code::AlreadyExists), "a script with that name already exists".into()),
        Failure::Active => (Some(Code::Active), "the active script cannot be deleted".into()),
        Failure::MaxScripts => (Some(Code::QuotaMaxScripts), "too many scripts".into()),
        Failure::MaxSize => (Some(Code::QuotaMaxSize), "script is too large".into()),
        Failure::Quota => (Some(Code::Quota), "the scripts would take more space than the quota allows".into()),
        Failure::TryLater => (Some(Code::TryLater), "the script store is unavailable, try again later".into()),
    };
    Response::status(Status::No, code, text)
}

fn nonexistent(request: &Request) -> String {
    match request {
        Request::GetScript { name }
        | Request::DeleteScript { name }
        | Request::SetActive { name: Some(name) }
        | Request::RenameScript { old_name: name, .. } => format!("there is no script named {name:?}"),
        _ => "there is no such script".into(),
    }
}

fn not_utf8() -> Action {
    Action::Reply(Response::no("script is not valid UTF-8"))
}
