//! One test's mailbus: its own database and NATS prefix, roles bound on loopback port 0, in-process.

use std::net::SocketAddr;

use mailbus::roles::{self, Role};
use mailbus::settings::Settings;
use mailbus_proto::v1::{
    self as pb, directory_client::DirectoryClient, jmap_client::JmapClient, mailbox_client::MailboxClient,
    sieve_client::SieveClient,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::infra::Infra;

/// Port 25's sender authentication is off in tests unless a test turns it on (with a [`TestDns`] to ask):
/// a test message's domains publish nothing, so every check would only add a header that tests of other
/// things do not expect. The resolver is a closed loopback port all the same, so that nothing reaches the
/// real DNS.
///
/// [`TestDns`]: crate::dns::TestDns
pub const NO_SENDER_AUTH: &[(&str, &str)] = &[
    ("MAILBUS_DNS_RESOLVER", "127.0.0.1:9"),
    ("MAILBUS_SPF_POLICY", "off"),
    ("MAILBUS_DKIM_POLICY", "off"),
    ("MAILBUS_ARC_POLICY", "off"),
    ("MAILBUS_DMARC_POLICY", "off"),
];

pub struct StackBuilder {
    roles: Vec<Role>,
    nats_url: Option<String>,
    extra: Vec<(String, String)>,
}

impl StackBuilder {
    pub fn roles(mut self, roles: &[Role]) -> Self {
        self.roles = roles.to_vec();
        self
    }

    /// Use this NATS instead of the shared one.
    pub fn nats(mut self, url: &str) -> Self {
        self.nats_url = Some(url.to_owned());
        self
    }

    /// Any setting from `mailbus env`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn start(self) -> TestStack {
        let infra = tokio::task::spawn_blocking(Infra::get).await.expect("infrastructure start-up panicked");
        let database_url = infra.create_database().await;
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let nats_url = self.nats_url.unwrap_or_else(|| infra.nats_url().to_owned());
        let (cert, key) = (infra.tls_cert.display().to_string(), infra.tls_key.display().to_string());
        let mut pairs: Vec<(String, String)> = [
            ("DATABASE_URL", database_url.as_str()),
            ("NATS_URL", nats_url.as_str()),
            ("MAILBUS_NATS_PREFIX", prefix.as_str()),
            ("MAILBUS_HOSTNAME", "mx.test"),
            ("MAILBUS_NATS_TIMEOUT_MS", "2000"),
            ("MAILBUS_DB_MAX_CONNECTIONS", "5"),
            ("MAILBUS_TLS_CERT", cert.as_str()),
            ("MAILBUS_TLS_KEY", key.as_str()),
            // Failed logins are slowed down in production; tests would only wait.
            ("MAILBUS_AUTH_FAILURE_DELAY_MS", "0"),
            // No test may look anything up in DNS or reach past loopback: every remote domain goes to a
            // closed loopback port unless the test routes it somewhere else.
            ("MAILBUS_RELAY_TRANSPORTS", "*=127.0.0.1:9"),
        ]
        .iter()
        .chain(NO_SENDER_AUTH)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for var in mailbus::settings::VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
            pairs.push((var.name.to_owned(), "127.0.0.1:0".to_owned()));
        }
        pairs.extend(self.extra);
        let settings = Settings::from_pairs(pairs).expect("test settings are valid");
        let mut stack = TestStack {
            settings,
            database_url,
            smtp: None,
            submission: None,
            submissions: None,
            pop3: None,
            pop3s: None,
            imap: None,
            imaps: None,
            managesieve: None,
            relay_grpc: None,
            relay_metrics: None,
            mailbox_metrics: None,
            smtp_metrics: None,
            http: None,
            https: None,
            http_metrics: None,
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
        };
        stack.start_roles(&self.roles).await;
        stack
    }
}

/// Creates `address` (and its domain, if new) with `password` through the mailbox role at `mailbox_url`,
/// as `mailbus admin` would; returns the account id.
pub async fn add_account(mailbox_url: &str, address: &str, password: &str) -> i64 {
    let mut directory = DirectoryClient::connect(mailbox_url.to_owned()).await.expect("reaching the directory");
    let domain = address.rsplit_once('@').expect("address has a domain").1;
    match directory.add_domain(pb::AddDomainRequest { name: domain.into() }).await {
        Ok(_) => {}
        Err(status) if status.code() == tonic::Code::AlreadyExists => {}
        Err(status) => panic!("adding domain {domain}: {status}"),
    }
    let account = pb::AddAccountRequest { address: address.into(), password: password.into() };
    directory.add_account(account).await.expect("adding account").into_inner().id
}

pub struct TestStack {
    /// The settings the roles run with; `MAILBUS_MAILBOX_URL` points at this stack's mailbox role.
    pub settings: Settings,
    pub database_url: String,
    pub smtp: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub managesieve: Option<SocketAddr>,
    /// The relay's QueueAdmin gRPC address.
    pub relay_grpc: Option<SocketAddr>,
    pub relay_metrics: Option<SocketAddr>,
    pub mailbox_metrics: Option<SocketAddr>,
    pub smtp_metrics: Option<SocketAddr>,
    /// The http role's plain HTTP and HTTPS listeners.
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub http_metrics: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestStack {
    pub fn builder() -> StackBuilder {
        StackBuilder { roles: Role::ALL.to_vec(), nats_url: None, extra: Vec::new() }
    }

    /// Every role, on the shared servers.
    pub async fn start() -> TestStack {
        Self::builder().start().await
    }

    /// Starts more roles against the same database, NATS and prefix (a second relay, say).
    pub async fn start_roles(&mut self, roles: &[Role]) {
        let bound = roles::bind(roles, &self.settings).await.expect("binding roles");
        if let Some(mailbox) = &bound.mailbox {
            self.settings.set("MAILBUS_MAILBOX_URL", &format!("http://{}", mailbox.grpc_addr()));
            self.mailbox_metrics = Some(mailbox.metrics_addr());
        }
        if let Some(relay) = &bound.relay {
            self.relay_grpc = Some(relay.grpc_addr());
            self.relay_metrics = Some(relay.metrics_addr());
        }
        if let Some(smtp) = &bound.smtp {
            self.smtp = Some(smtp.smtp_addr());
            self.submission = smtp.submission_addr();
            self.submissions = smtp.submissions_addr();
            self.smtp_metrics = Some(smtp.metrics_addr());
        }
        if let Some(access) = &bound.access {
            self.pop3 = Some(access.pop3_addr());
            self.pop3s = access.pop3s_addr();
            self.imap = Some(access.imap_addr());
            self.imaps = access.imaps_addr();
            self.managesieve = Some(access.managesieve_addr());
        }
        if let Some(http) = &bound.http {
            self.http = Some(http.http_addr());
            self.https = http.https_addr();
            self.http_metrics = Some(http.metrics_addr());
        }
        self.tasks.push(tokio::spawn(bound.serve(self.shutdown.clone())));
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp.expect("this stack runs smtp-ingress")
    }

    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3.expect("this stack runs access")
    }

    pub fn imap_addr(&self) -> SocketAddr {
        self.imap.expect("this stack runs access")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.expect("this stack runs http")
    }

    pub fn mailbox_url(&self) -> String {
        self.settings.string("MAILBUS_MAILBOX_URL").expect("mailbox URL is set")
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.mailbox_url())
            .expect("valid URL")
            .connect()
            .await
            .expect("connecting to the mailbox role")
    }

    pub async fn directory(&self) -> DirectoryClient<Channel> {
        DirectoryClient::new(self.channel().await)
    }

    pub async fn mailbox(&self) -> MailboxClient<Channel> {
        MailboxClient::new(self.channel().await)
    }

    pub async fn sieve(&self) -> SieveClient<Channel> {
        SieveClient::new(self.channel().await)
    }

    pub async fn jmap(&self) -> JmapClient<Channel> {
        JmapClient::new(self.channel().await)
    }

    /// One JMAP method call on `account_id`'s behalf through the mailbox role's Jmap service, as the http
    /// role makes it (no creation ids from earlier calls): the responses' names and arguments. Panics if
    /// the RPC itself fails.
    pub async fn jmap_call(
        &self,
        account_id: i64,
        method: &str,
        arguments: serde_json::Value,
    ) -> Vec<(String, serde_json::Value)> {
        let call = pb::JmapCall {
            account_id,
            method: method.into(),
            arguments: arguments.to_string(),
            created_ids: Default::default(),
        };
        let result = self.jmap().await.call(call).await.unwrap_or_else(|s| panic!("{method}: {s}")).into_inner();
        result
            .responses
            .into_iter()
            .map(|r| (r.name, serde_json::from_str(&r.arguments).expect("responses are JSON")))
            .collect()
    }

    /// Creates `address` (and its domain, if new) with `password`; returns the account id.
    pub async fn add_account(&self, address: &str, password: &str) -> i64 {
        add_account(&self.mailbox_url(), address, password).await
    }

    /// Whether the directory accepts these credentials.
    pub async fn authenticates(&self, username: &str, password: &str) -> bool {
        let request = pb::AuthenticateRequest { username: username.into(), password: password.into() };
        self.directory().await.authenticate(request).await.expect("authenticate").into_inner().ok
    }

    /// Calls Deliver as the relay would, with the body in one chunk.
    pub async fn deliver(
        &self,
        queue_id: &str,
        recipient: &str,
        body: &[u8],
    ) -> Result<pb::DeliverResponse, tonic::Status> {
        let header = pb::DeliveryHeader {
            queue_id: queue_id.into(),
            recipient: recipient.into(),
            mail_from: "sender@example.net".into(),
            size: body.len() as u64,
        };
        let parts = mailbus_proto::upload::deliver(header, body);
        self.mailbox().await.deliver(futures::stream::iter(parts)).await.map(tonic::Response::into_inner)
    }

    /// UIDs in the account's INBOX.
    pub async fn inbox_uids(&self, account_id: i64) -> Vec<u32> {
        let request = pb::ListMessagesRequest { account_id, mailbox: "INBOX".into() };
        let listing = self.mailbox().await.list_messages(request).await.expect("listing INBOX").into_inner();
        listing.messages.iter().map(|m| m.uid).collect()
    }

    /// Waits until the INBOX holds `count` messages, or panics after `limit`.
    pub async fn wait_for_inbox(&self, account_id: i64, count: usize, limit: std::time::Duration) -> Vec<u32> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let uids = self.inbox_uids(account_id).await;
            if uids.len() >= count || tokio::time::Instant::now() > deadline {
                assert_eq!(uids.len(), count, "INBOX of account {account_id} after waiting {limit:?}");
                return uids;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A subscription to the account's mailbox change events, as an access replica has.
    pub async fn mailbox_events(&self, account_id: i64) -> async_nats::Subscriber {
        let nats = mailbus_jetstream::connect(&self.settings.string("NATS_URL").unwrap(), "test").await.unwrap();
        let names = mailbus::settings::nats_names(&self.settings).unwrap();
        let subscriber = nats.subscribe(names.mailbox_events(account_id)).await.expect("subscribing to events");
        // The subscription is in place once the server has seen a round trip after it.
        nats.flush().await.expect("flushing the subscription");
        subscriber
    }

    /// A handle on this stack's queue partitions and body store, named and shaped as its roles have them.
    pub async fn queue(&self) -> mailbus_jetstream::Queue {
        let nats = mailbus_jetstream::connect(&self.settings.string("NATS_URL").unwrap(), "test").await.unwrap();
        let names = mailbus::settings::nats_names(&self.settings).unwrap();
        mailbus_jetstream::Queue::open(nats, names, std::time::Duration::from_secs(5)).await.expect("opening the queue")
    }

    /// Waits until the relay has settled every queued message, or panics after `limit`. The status
    /// reads the partitions one after another, so a message the relay requeues into another partition
    /// meanwhile (its new copy published there before the old one is acknowledged) can be missed by one
    /// reading: the queue counts as empty when two readings 100 ms apart both find it so.
    pub async fn wait_for_empty_queue(&self, limit: std::time::Duration) {
        let queue = self.queue().await;
        let deadline = tokio::time::Instant::now() + limit;
        let mut empty_before = false;
        loop {
            let status = queue.status().await.expect("queue status");
            if status.messages == 0 && empty_before {
                return;
            }
            empty_before = status.messages == 0;
            assert!(tokio::time::Instant::now() < deadline, "queue still holds {status:?} after {limit:?}");
            tokio::time::sleep(std::time::Duration::from_millis(if empty_before { 100 } else { 50 })).await;
        }
    }

    /// Stops every role gracefully and reports the first role error.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            task.await.expect("role task panicked").expect("role failed");
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
