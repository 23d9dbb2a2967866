//! `Sieve`: an account's scripts for ManageSieve (RFC 5804) and the admin tool. A script is stored only
//! after it parses with the extensions delivery runs (the error text names line and column), and within
//! the account's script quota (`MAILBUS_SIEVE_MAX_SCRIPTS`, `MAILBUS_SIEVE_MAX_SCRIPT_SIZE`). The error
//! codes are the contract's (sieve.proto).

use mailbus_address::AccountId;
use mailbus_proto::refusal;
use mailbus_proto::v1::{self as pb, Reason, sieve_server::Sieve};
use tonic::{Request, Response, Status};

use crate::error::invalid;
use crate::rpc::MailboxService;
use crate::store::sieve::{self as store, NoRoom, Quota, ScriptInfo};

impl MailboxService {
    /// The account, if it exists and is enabled.
    async fn sieve_account(&self, id: i64) -> Result<AccountId, Status> {
        if id <= 0 {
            return Err(invalid("no account"));
        }
        let account = AccountId::new(id);
        if !store::account_enabled(&self.pool, account).await? {
            return Err(Status::permission_denied("the account is disabled or gone"));
        }
        Ok(account)
    }

    fn quota(&self) -> Quota {
        Quota { max_scripts: self.sieve_quota.max_scripts, max_size: self.sieve_quota.max_size }
    }

    /// Checks a script: over the size limit is the quota's refusal, a parse failure its text.
    fn check(&self, content: &str) -> Result<(), Status> {
        if content.len() > self.sieve_quota.max_size {
            return Err(no_room(NoRoom::MaxSize));
        }
        let limits = mailbus_sieve::Limits { max_script_size: usize::MAX, ..self.filter.limits().clone() };
        mailbus_sieve::parse(content, &limits).map(drop).map_err(|error| Status::invalid_argument(error.to_string()))
    }

    async fn listing(&self, account: AccountId) -> Result<Response<pb::SieveScriptList>, Status> {
        let scripts = store::list(&self.pool, account).await?;
        Ok(Response::new(pb::SieveScriptList { scripts: scripts.into_iter().map(info).collect() }))
    }
}

#[tonic::async_trait]
impl Sieve for MailboxService {
    async fn list_scripts(&self, request: Request<pb::SieveAccount>) -> Result<Response<pb::SieveScriptList>, Status> {
        let account = self.sieve_account(request.into_inner().account_id).await?;
        self.listing(account).await
    }

    async fn get_script(&self, request: Request<pb::SieveScriptRef>) -> Result<Response<pb::SieveScript>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        let content = store::get(&self.pool, account, &request.name).await?;
        Ok(Response::new(pb::SieveScript { account_id: request.account_id, name: request.name, content }))
    }

    async fn put_script(&self, request: Request<pb::SieveScript>) -> Result<Response<pb::SieveScriptInfo>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        check_name(&request.name)?;
        self.check(&request.content)?;
        match store::put(&self.pool, account, &request.name, &request.content, self.quota()).await? {
            Ok(stored) => Ok(Response::new(info(stored))),
            Err(reason) => Err(no_room(reason)),
        }
    }

    async fn check_script(&self, request: Request<pb::SieveCheck>) -> Result<Response<pb::SieveCheckResult>, Status> {
        let request = request.into_inner();
        self.sieve_account(request.account_id).await?;
        self.check(&request.content)?;
        Ok(Response::new(pb::SieveCheckResult { warnings: Vec::new() }))
    }

    async fn set_active(&self, request: Request<pb::SieveScriptRef>) -> Result<Response<pb::SieveScriptList>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        let name = Some(request.name.as_str()).filter(|n| !n.is_empty());
        store::set_active(&self.pool, account, name).await?;
        self.listing(account).await
    }

    async fn delete_script(
        &self,
        request: Request<pb::SieveScriptRef>,
    ) -> Result<Response<pb::SieveScriptList>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        store::delete(&self.pool, account, &request.name).await?;
        self.listing(account).await
    }

    async fn rename_script(&self, request: Request<pb::SieveRename>) -> Result<Response<pb::SieveScriptList>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        check_name(&request.new_name)?;
        store::rename(&self.pool, account, &request.old_name, &request.new_name).await?;
        self.listing(account).await
    }

    async fn have_space(&self, request: Request<pb::SieveSpace>) -> Result<Response<pb::SieveSpaceAnswer>, Status> {
        let request = request.into_inner();
        let account = self.sieve_account(request.account_id).await?;
        check_name(&request.name)?;
        let size = usize::try_from(request.size).unwrap_or(usize::MAX);
        let mut conn = self.pool.acquire().await.map_err(crate::error::MailboxError::from)?;
        let answer = match store::fits(&mut conn, account, &request.name, size, self.quota()).await? {
            Ok(()) => pb::SieveSpaceAnswer { fits: true, reason: String::new() },
            Err(reason) => pb::SieveSpaceAnswer { fits: false, reason: reason.reason().to_owned() },
        };
        Ok(Response::new(answer))
    }
}

/// RFC 5804 §1.6: a script name is non-empty UTF-8 without control characters (nor U+2028, U+2029);
/// the table holds at most 512 characters.
fn check_name(name: &str) -> Result<(), Status> {
    let bad = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if name.is_empty() || name.chars().count() > 512 || name.chars().any(bad) {
        return Err(invalid(format!("{name:?} is not a valid script name")));
    }
    Ok(())
}

fn no_room(reason: NoRoom) -> Status {
    let text = match reason {
        NoRoom::MaxScripts => "the account has as many scripts as it may have",
        NoRoom::MaxSize => "the script is larger than the limit",
    };
    let reason = match reason {
        NoRoom::MaxScripts => Reason::TooManyScripts,
        NoRoom::MaxSize => Reason::ScriptTooLarge,
    };
    refusal::status(tonic::Code::ResourceExhausted, text, reason, "")
}

fn info(script: ScriptInfo) -> pb::SieveScriptInfo {
    pb::SieveScriptInfo {
        name: script.name,
        active: script.active,
        size: script.size.max(0) as u64,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_follow_rfc_5804() {
        for good in ["vacation", "Main rules", "füße", &"x".repeat(512)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a\nb", "tab\there", "nul\0", "line\u{2028}sep", "del\u{7f}", &"x".repeat(513)] {
            assert_eq!(check_name(bad).unwrap_err().code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn quota_refusals_name_the_managesieve_reason() {
        let status = no_room(NoRoom::MaxScripts);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refusal::reason(&status), Reason::TooManyScripts);
        let status = no_room(NoRoom::MaxSize);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refusal::reason(&status), Reason::ScriptTooLarge);
    }
}
