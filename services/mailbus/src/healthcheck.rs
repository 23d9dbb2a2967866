//! `mailbus healthcheck <role>`: asks a role's `/readyz` on loopback, for container health checks (the
//! runtime image has no curl).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::roles::Role;
use crate::settings::Settings;

pub async fn run(role: Role, settings: &Settings) -> anyhow::Result<()> {
    let port = settings.get(role.metrics_setting())?.port();
    let check = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.context("connecting")?;
        stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), check).await.context("timed out")??;
    let status = String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned();
    if !status.contains(" 200 ") {
        bail!("{} is not ready: {status}", role.name());
    }
    Ok(())
}
