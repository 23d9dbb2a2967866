//! `DkimKeys` over gRPC: key generation (off the async threads), listing, state changes, removal, and
//! the relay's `SigningKeys`. The reply to the operator carries the DNS record, never the private key.

use mailbus_address::Domain;
use mailbus_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::dkim::{self, Algorithm};
use crate::error::invalid;
use crate::rpc::MailboxService;
use crate::store::dkim::{self as store, KeyRow, KeyState};

fn domain(name: &str) -> Result<String, Status> {
    let domain: Domain = name.parse().map_err(|e| invalid(format!("domain {name:?}: {e}")))?;
    Ok(domain.as_str().to_owned())
}

fn selector(given: &str) -> Result<String, Status> {
    dkim::selector(given).ok_or_else(|| invalid(format!("selector {given:?}: must be DNS labels (a-z, 0-9, -)")))
}

fn algorithm_to_pb(algorithm: Algorithm) -> pb::DkimAlgorithm {
    match algorithm {
        Algorithm::Ed25519 => pb::DkimAlgorithm::Ed25519,
        Algorithm::Rsa => pb::DkimAlgorithm::Rsa,
    }
}

fn key_to_pb(row: KeyRow) -> pb::DkimKey {
    let algorithm = row.algorithm();
    let state = match row.state() {
        KeyState::Active => pb::DkimKeyState::Active,
        KeyState::Published => pb::DkimKeyState::Published,
        KeyState::Retired => pb::DkimKeyState::Retired,
    };
    pb::DkimKey {
        dns_name: dkim::dns_name(&row.selector, &row.domain),
        dns_value: dkim::dns_value(algorithm, &row.public_key),
        domain: row.domain,
        selector: row.selector,
        algorithm: algorithm_to_pb(algorithm).into(),
        state: state.into(),
        created_unix: row.created_unix,
    }
}

#[tonic::async_trait]
impl pb::dkim_keys_server::DkimKeys for MailboxService {
    async fn generate_dkim_key(
        &self,
        request: Request<pb::GenerateDkimKeyRequest>,
    ) -> Result<Response<pb::DkimKey>, Status> {
        let request = request.into_inner();
        let domain = domain(&request.domain)?;
        let algorithm = match request.algorithm() {
            pb::DkimAlgorithm::Ed25519 => Algorithm::Ed25519,
            pb::DkimAlgorithm::Rsa => Algorithm::Rsa,
            pb::DkimAlgorithm::Unspecified => return Err(invalid("algorithm: ed25519 or rsa")),
        };
        let selector = if request.selector.is_empty() {
            algorithm.default_selector(chrono::Utc::now().date_naive())
        } else {
            selector(&request.selector)?
        };
        let pair = tokio::task::spawn_blocking(move || dkim::generate(algorithm))
            .await
            .map_err(|e| Status::internal(format!("key generation: {e}")))?
            .map_err(|e| Status::internal(format!("key generation: {e}")))?;
        let row = store::insert(&self.pool, &domain, &selector, algorithm, &pair).await?;
        tracing::info!(%domain, %selector, algorithm = algorithm.as_str(), state = %row.state, "DKIM key generated");
        Ok(Response::new(key_to_pb(row)))
    }

    async fn list_dkim_keys(
        &self,
        request: Request<pb::ListDkimKeysRequest>,
    ) -> Result<Response<pb::ListDkimKeysResponse>, Status> {
        let request = request.into_inner();
        let domain = if request.domain.is_empty() { String::new() } else { domain(&request.domain)? };
        let keys = store::list(&self.pool, &domain).await?.into_iter().map(key_to_pb).collect();
        Ok(Response::new(pb::ListDkimKeysResponse { keys }))
    }

    async fn set_dkim_key_state(
        &self,
        request: Request<pb::SetDkimKeyStateRequest>,
    ) -> Result<Response<pb::DkimKey>, Status> {
        let request = request.into_inner();
        let state = match request.state() {
            pb::DkimKeyState::Active => KeyState::Active,
            pb::DkimKeyState::Published => KeyState::Published,
            pb::DkimKeyState::Retired => KeyState::Retired,
            pb::DkimKeyState::Unspecified => return Err(invalid("state: active, published or retired")),
        };
        let (domain, selector) = (domain(&request.domain)?, selector(&request.selector)?);
        let row = store::set_state(&self.pool, &domain, &selector, state).await?;
        tracing::info!(%domain, %selector, state = state.as_str(), "DKIM key state changed");
        Ok(Response::new(key_to_pb(row)))
    }

    async fn remove_dkim_key(
        &self,
        request: Request<pb::RemoveDkimKeyRequest>,
    ) -> Result<Response<pb::RemoveDkimKeyResponse>, Status> {
        let request = request.into_inner();
        let (domain, selector) = (domain(&request.domain)?, selector(&request.selector)?);
        store::remove(&self.pool, &domain, &selector).await?;
        tracing::info!(%domain, %selector, "DKIM key removed");
        Ok(Response::new(pb::RemoveDkimKeyResponse {}))
    }

    async fn signing_keys(
        &self,
        request: Request<pb::SigningKeysRequest>,
    ) -> Result<Response<pb::SigningKeysResponse>, Status> {
        let domain = domain(&request.into_inner().domain)?;
        let keys = store::signing_keys(&self.pool, &domain)
            .await?
            .into_iter()
            .filter_map(|row| {
                let algorithm = Algorithm::from_column(&row.algorithm)?;
                Some(pb::SigningKey {
                    selector: row.selector,
                    algorithm: algorithm_to_pb(algorithm).into(),
                    private_key: row.private_key.expose().to_vec(),
                })
            })
            .collect();
        Ok(Response::new(pb::SigningKeysResponse { keys }))
    }
}
