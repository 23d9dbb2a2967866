//! `Directory` over gRPC: requests become calls on `store::directory`, its rows become protobuf replies.

use mailbus_address::{AccountId, EmailAddress};
use mailbus_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::error::invalid;
use crate::password::Password;
use crate::rpc::MailboxService;
use crate::store::directory::{self, AccountRow, Resolution};

#[tonic::async_trait]
impl pb::directory_server::Directory for MailboxService {
    async fn resolve_recipient(
        &self,
        request: Request<pb::ResolveRecipientRequest>,
    ) -> Result<Response<pb::ResolveRecipientResponse>, Status> {
        let address: EmailAddress = request.into_inner().address.parse().map_err(invalid)?;
        let reply = match directory::resolve(&self.pool, &address, &self.recipient_delimiter).await? {
            Resolution::Local { accounts, forwards } => pb::ResolveRecipientResponse {
                kind: pb::RecipientKind::Local.into(),
                account_ids: accounts.into_iter().map(i64::from).collect(),
                forwards,
            },
            Resolution::UnknownUser => {
                pb::ResolveRecipientResponse { kind: pb::RecipientKind::UnknownUser.into(), ..Default::default() }
            }
            Resolution::NotLocal => {
                pb::ResolveRecipientResponse { kind: pb::RecipientKind::NotLocal.into(), ..Default::default() }
            }
        };
        Ok(Response::new(reply))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request = request.into_inner();
        let account =
            directory::authenticate(&self.pool, &self.hasher, &request.username, Password::new(request.password))
                .await?;
        Ok(Response::new(match account {
            Some(account) => pb::AuthenticateResponse {
                ok: true,
                account_id: account.id.get(),
                account_address: account.address,
                credential_epoch: account.credential_epoch,
            },
            None => pb::AuthenticateResponse::default(),
        }))
    }

    async fn credential_epoch(
        &self,
        request: Request<pb::CredentialEpochRequest>,
    ) -> Result<Response<pb::CredentialEpochResponse>, Status> {
        let account = AccountId::from(request.into_inner().account_id);
        match directory::credential_epoch(&self.pool, account).await? {
            Some(credential_epoch) => Ok(Response::new(pb::CredentialEpochResponse { credential_epoch })),
            None => Err(Status::not_found(format!("no account {}", account.get()))),
        }
    }

    async fn check_sender(
        &self,
        request: Request<pb::CheckSenderRequest>,
    ) -> Result<Response<pb::CheckSenderResponse>, Status> {
        let request = request.into_inner();
        let address: EmailAddress = request.address.parse().map_err(invalid)?;
        let allowed = directory::sender_allowed(
            &self.pool,
            AccountId::from(request.account_id),
            &address,
            &self.recipient_delimiter,
        )
        .await?;
        Ok(Response::new(pb::CheckSenderResponse { allowed }))
    }

    async fn add_domain(&self, request: Request<pb::AddDomainRequest>) -> Result<Response<pb::Domain>, Status> {
        let row = self.announcing(directory::add_domain(&self.pool, &request.into_inner().name)).await?;
        Ok(Response::new(pb::Domain { name: row.name, created_unix: row.created_unix }))
    }

    async fn list_domains(
        &self,
        _request: Request<pb::ListDomainsRequest>,
    ) -> Result<Response<pb::ListDomainsResponse>, Status> {
        let domains = directory::list_domains(&self.pool).await?;
        Ok(Response::new(pb::ListDomainsResponse {
            domains: domains.into_iter().map(|d| pb::Domain { name: d.name, created_unix: d.created_unix }).collect(),
        }))
    }

    async fn remove_domain(
        &self,
        request: Request<pb::RemoveDomainRequest>,
    ) -> Result<Response<pb::RemoveDomainResponse>, Status> {
        let request = request.into_inner();
        let removed = self.announcing(directory::remove_domain(&self.pool, &request.name, request.force)).await?;
        Ok(Response::new(pb::RemoveDomainResponse {
            accounts_removed: removed.accounts,
            aliases_removed: removed.aliases,
        }))
    }

    async fn add_account(&self, request: Request<pb::AddAccountRequest>) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        if request.password.is_empty() {
            return Err(invalid("password must not be empty"));
        }
        let row = self
            .announcing(directory::add_account(
                &self.pool,
                &self.hasher,
                &request.address,
                Password::new(request.password),
            ))
            .await?;
        Ok(Response::new(account_to_pb(row)))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let domain = request.into_inner().domain;
        let rows = directory::list_accounts(&self.pool, Some(domain.as_str()).filter(|d| !d.is_empty())).await?;
        Ok(Response::new(pb::ListAccountsResponse { accounts: rows.into_iter().map(account_to_pb).collect() }))
    }

    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        if request.password.as_deref() == Some("") {
            return Err(invalid("password must not be empty"));
        }
        let limit = |value: Option<u64>| value.map(|v| (v > 0).then_some(v.min(i64::MAX as u64) as i64));
        let change = directory::AccountChange {
            password: request.password.map(Password::new),
            disabled: request.disabled,
            quota_bytes: limit(request.quota_bytes),
            quota_messages: limit(request.quota_messages),
        };
        let row =
            self.announcing(directory::update_account(&self.pool, &self.hasher, &request.address, change)).await?;
        Ok(Response::new(account_to_pb(row)))
    }

    async fn remove_account(
        &self,
        request: Request<pb::RemoveAccountRequest>,
    ) -> Result<Response<pb::RemoveAccountResponse>, Status> {
        self.announcing(directory::remove_account(&self.pool, &request.into_inner().address)).await?;
        Ok(Response::new(pb::RemoveAccountResponse {}))
    }

    async fn rename_account(
        &self,
        request: Request<pb::RenameAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        let row =
            self.announcing(directory::rename_account(&self.pool, &request.address, &request.new_address)).await?;
        Ok(Response::new(account_to_pb(row)))
    }

    async fn add_alias(&self, request: Request<pb::AddAliasRequest>) -> Result<Response<pb::Alias>, Status> {
        let request = request.into_inner();
        let row = self.announcing(directory::add_alias(&self.pool, &request.address, &request.targets)).await?;
        Ok(Response::new(pb::Alias { address: row.address, targets: row.targets }))
    }

    async fn remove_alias(
        &self,
        request: Request<pb::RemoveAliasRequest>,
    ) -> Result<Response<pb::RemoveAliasResponse>, Status> {
        let request = request.into_inner();
        self.announcing(directory::remove_alias(&self.pool, &request.address, &request.targets)).await?;
        Ok(Response::new(pb::RemoveAliasResponse {}))
    }

    async fn list_aliases(
        &self,
        request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let domain = request.into_inner().domain;
        let rows = directory::list_aliases(&self.pool, Some(domain.as_str()).filter(|d| !d.is_empty())).await?;
        Ok(Response::new(pb::ListAliasesResponse {
            aliases: rows.into_iter().map(|a| pb::Alias { address: a.address, targets: a.targets }).collect(),
        }))
    }
}

impl MailboxService {
    /// Runs a change to domains, accounts or aliases, then announces it (`Events::directory_changed`)
    /// whether or not it succeeded, as one may fail after its commit; its result comes back as it was.
    async fn announcing<T>(&self, change: impl Future<Output = T>) -> T {
        // A caller that goes away during the change (which may commit all the same) must not skip the
        // announcement: dropped before it is disarmed, the guard announces on a task of its own.
        let mut guard = AnnounceOnDrop(Some(self.events.clone()));
        let done = change.await;
        guard.0 = None;
        self.events.directory_changed().await;
        done
    }
}

/// Announces a directory change when dropped while armed (see [`MailboxService::announcing`]).
struct AnnounceOnDrop(Option<crate::events::Events>);

impl Drop for AnnounceOnDrop {
    fn drop(&mut self) {
        if let Some(events) = self.0.take() {
            tokio::spawn(async move { events.directory_changed().await });
        }
    }
}

fn account_to_pb(row: AccountRow) -> pb::Account {
    pb::Account {
        id: row.id.get(),
        address: row.address,
        disabled: row.disabled,
        created_unix: row.created_unix,
        message_count: row.message_count as u64,
        storage_bytes: row.storage_bytes as u64,
        quota_bytes: row.quota_bytes.map(|q| q as u64),
        quota_messages: row.quota_messages.map(|q| q as u64),
    }
}
