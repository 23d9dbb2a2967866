//! The servers every test shares: PostgreSQL and nats-server.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mailbus_devstack::{Nats, NatsCluster, Postgres, free_port};
use sqlx::Connection;

pub struct Infra {
    /// A URL on which `CREATE DATABASE` works.
    admin_url: String,
    /// A self-signed certificate for `mx.test` and loopback, as PEM files the roles load like any operator's.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    nats_url: String,
    _postgres: Option<Postgres>,
    _nats: Option<Nats>,
}

static INFRA: OnceLock<Infra> = OnceLock::new();

/// Where this test process keeps its servers' files: `<tmp>/mailbus-test-<pid>`. The servers die with the
/// process; the directories of dead processes are removed by the next run.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("mailbus-test-{}", std::process::id()))
}

fn remove_stale_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("mailbus-test-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Infra {
    /// The shared servers, started on first use.
    pub fn get() -> &'static Infra {
        INFRA.get_or_init(|| Infra::start().unwrap_or_else(|e| panic!("test infrastructure: {e:#}")))
    }

    fn start() -> anyhow::Result<Infra> {
        remove_stale_scratch_dirs();
        let dir = scratch_dir();
        let (admin_url, postgres) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let postgres = Postgres::start(&dir.join("postgres"), free_port()?)?;
                (postgres.url("postgres"), Some(postgres))
            }
        };
        let (nats_url, nats) = match std::env::var("NATS_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let nats = Nats::start(&dir.join("nats"), free_port()?)?;
                (nats.url(), Some(nats))
            }
        };
        let generated = mailbus_tls::self_signed(&["mx.test".to_owned(), "localhost".to_owned()])?;
        std::fs::create_dir_all(&dir)?;
        let (tls_cert, tls_key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&tls_cert, generated.cert_pem)?;
        std::fs::write(&tls_key, generated.key_pem)?;
        Ok(Infra { admin_url, nats_url, tls_cert, tls_key, _postgres: postgres, _nats: nats })
    }

    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// Creates an empty database for one test and returns its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.expect("connecting to PostgreSQL as admin");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        conn.close().await.ok();
        let (base, _) = self.admin_url.rsplit_once('/').expect("database URL has a path");
        format!("{base}/{name}")
    }
}

/// A nats-server of one test's own, for tests that stop and restart it. It syncs each message before
/// acknowledging it, so that a kill loses nothing acknowledged.
pub fn dedicated_nats(name: &str) -> Nats {
    let dir = scratch_dir().join(format!("nats-{name}-{}", uuid::Uuid::new_v4().simple()));
    Nats::start_synced(&dir, free_port().expect("free port")).expect("starting a dedicated nats-server")
}

/// A three-node nats-server cluster of one test's own, on loopback, for tests that kill a node: streams
/// made with three replicas (`MAILBUS_NATS_REPLICAS=3`) keep their quorum with any one node down.
pub fn dedicated_nats_cluster(name: &str) -> NatsCluster {
    let dir = scratch_dir().join(format!("nats-cluster-{name}-{}", uuid::Uuid::new_v4().simple()));
    NatsCluster::start(&dir, 3).expect("starting a three-node nats-server cluster")
}
