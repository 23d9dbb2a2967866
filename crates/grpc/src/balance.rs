//! Client-side balancing over every replica of a role. A [`Balanced`] service keeps one lazily
//! connecting channel per replica address and sends each call to the replica with the fewest calls in
//! flight among those that are up (ties go round the set). A background task resolves the upstream's
//! names again every interval (adding and dropping channels as addresses come and go) and asks each
//! replica's `grpc.health.v1` whether it serves: a replica whose connection fails is taken out of
//! rotation at once, and back in when it answers again.
//!
//! A call that failed on one replica is sent once more to another (this is the one place that retries):
//! - when the replica never read any of the request (the connection was refused or already gone), since
//!   no server can have acted on it;
//! - when the method is idempotent ([`crate::retry::is_idempotent`]) and the call failed without a
//!   reply or with `UNAVAILABLE`, its request body kept up to [`REPLAY_LIMIT`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

use crate::retry;
use crate::tape::{Tape, TapeBody};
use crate::upstream::{Resolved, Upstream, lookup};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request bytes kept per idempotent call so that it can be sent again: a Deliver of a message up to
/// this size survives its replica's death; a larger one fails, and the relay's own retry schedule
/// delivers it later (Deliver is idempotent by its key, so either way it is stored once).
pub const REPLAY_LIMIT: usize = 1 << 20;

/// How long a call waits for a name's first resolution before it fails `UNAVAILABLE`.
const FIRST_RESOLUTION: Duration = Duration::from_secs(5);

/// A health check slower than this counts as a replica that is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A channel balancing over every replica of an [`Upstream`]. Clones share the replicas.
#[derive(Clone)]
pub struct Balanced {
    pool: Arc<Pool>,
}

struct Pool {
    upstream: String,
    endpoint: fn(SocketAddr) -> Endpoint,
    replicas: Mutex<Vec<Arc<Replica>>>,
    /// How many replicas are known, for calls waiting on the first resolution.
    known: watch::Sender<usize>,
    cursor: AtomicUsize,
}

struct Replica {
    addr: SocketAddr,
    channel: Channel,
    up: AtomicBool,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Balanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balanced").field("upstream", &self.pool.upstream).finish()
    }
}

impl Balanced {
    /// Balances over `upstream`'s replicas, each reached through `endpoint(addr)`. Spawns the task that
    /// resolves and probes them; it ends when the last clone is dropped. Needs a tokio runtime.
    pub(crate) fn new(upstream: &Upstream, endpoint: fn(SocketAddr) -> Endpoint) -> Balanced {
        let pool = Arc::new(Pool {
            upstream: upstream.to_string(),
            endpoint,
            replicas: Mutex::new(Vec::new()),
            known: watch::Sender::new(0),
            cursor: AtomicUsize::new(0),
        });
        let fixed = upstream.fixed_addrs();
        if let Some(addrs) = &fixed {
            pool.set_addrs(addrs);
        }
        tokio::spawn(maintain(Arc::downgrade(&pool), upstream.clone(), fixed.is_none()));
        // Every balanced client may retry; its retries show from zero (the health check is the one method
        // every upstream serves).
        mailbus_telemetry::metrics::grpc_client_retries_start_at_zero("grpc.health.v1.Health", "Check");
        Balanced { pool }
    }

    /// The addresses of the replicas in rotation now (up ones), and of all known ones.
    pub fn replicas(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let replicas = self.pool.lock();
        let up = replicas.iter().filter(|r| r.up.load(Ordering::Relaxed)).map(|r| r.addr).collect();
        (up, replicas.iter().map(|r| r.addr).collect())
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Replica>>> {
        self.replicas.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the replica set `addrs`: new addresses get a channel, gone ones lose theirs.
    fn set_addrs(&self, addrs: &BTreeSet<SocketAddr>) {
        let mut replicas = self.lock();
        replicas.retain(|replica| {
            let keep = addrs.contains(&replica.addr);
            if !keep {
                tracing::info!(upstream = %self.upstream, addr = %replica.addr, "gRPC replica left the upstream");
            }
            keep
        });
        for addr in addrs {
            if replicas.iter().all(|replica| replica.addr != *addr) {
                tracing::debug!(upstream = %self.upstream, %addr, "gRPC replica joined the upstream");
                replicas.push(Arc::new(Replica {
                    addr: *addr,
                    channel: (self.endpoint)(*addr).connect_lazy(),
                    up: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                }));
            }
        }
        self.known.send_replace(replicas.len());
    }

    /// The replica for the next call: among those up (or all, when none is), other than `except`, the
    /// one with the fewest calls in flight, ties going round the set.
    fn pick(&self, except: Option<SocketAddr>) -> Option<Arc<Replica>> {
        let replicas = self.lock();
        let others: Vec<&Arc<Replica>> = replicas.iter().filter(|r| Some(r.addr) != except).collect();
        let up: Vec<&Arc<Replica>> = others.iter().copied().filter(|r| r.up.load(Ordering::Relaxed)).collect();
        let candidates = if up.is_empty() { others } else { up };
        if candidates.is_empty() {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..candidates.len())
            .map(|i| candidates[(start + i) % candidates.len()])
            .min_by_key(|r| r.in_flight.load(Ordering::Relaxed))
            .cloned()
    }

    async fn wait_for_replicas(&self) -> Result<(), BoxError> {
        let mut known = self.known.subscribe();
        match tokio::time::timeout(FIRST_RESOLUTION, known.wait_for(|n| *n > 0)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(no_replica(&self.upstream)),
        }
    }

    /// Asks every replica whether it serves, and takes it out of rotation or puts it back by the answer.
    async fn probe(&self) {
        let replicas: Vec<Arc<Replica>> = self.lock().clone();
        let checks = replicas.iter().map(|replica| async move {
            let serving = crate::health_check(replica.channel.clone(), "", PROBE_TIMEOUT).await;
            replica.set_up(serving, &self.upstream);
        });
        futures::future::join_all(checks).await;
    }
}

impl Replica {
    fn set_up(&self, up: bool, upstream: &str) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            match up {
                true => tracing::info!(%upstream, addr = %self.addr, "gRPC replica back in rotation"),
                false => tracing::warn!(%upstream, addr = %self.addr, "gRPC replica out of rotation"),
            }
        }
    }

    /// Sends one attempt of a call, its body read from `tape`.
    async fn send(
        &self,
        parts: &http::request::Parts,
        tape: &Arc<Mutex<Tape>>,
    ) -> Result<http::Response<Body>, BoxError> {
        let request = http::Request::from_parts(parts.clone(), Body::new(TapeBody::new(tape.clone())));
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight);
        let response = self.channel.clone().oneshot(request).await;
        response.map_err(Into::into)
    }
}

/// Counts a call out of flight however its future ends, dropped included.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn no_replica(upstream: &str) -> BoxError {
    Box::new(tonic::Status::unavailable(format!("no address for {upstream}")))
}

/// Resolves `upstream`'s names again (when it has any) and probes every replica, every interval, for as
/// long as the pool is used.
async fn maintain(pool: Weak<Pool>, upstream: Upstream, resolve: bool) {
    let mut resolved = Resolved::default();
    loop {
        let Some(pool) = pool.upgrade() else { return };
        if resolve {
            let answers = futures::future::join_all(upstream.targets().iter().map(lookup)).await;
            pool.set_addrs(&resolved.update(answers));
        }
        pool.probe().await;
        drop(pool);
        tokio::time::sleep(upstream.resolve_every()).await;
    }
}

impl tower::Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each replica's channel applies its own back-pressure when the call is sent.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        let (parts, body) = request.into_parts();
        let idempotent = retry::is_idempotent(parts.uri.path());
        let tape = Tape::new(body, if idempotent { REPLAY_LIMIT } else { 0 });
        Box::pin(async move {
            pool.wait_for_replicas().await?;
            let first = pool.pick(None).ok_or_else(|| no_replica(&pool.upstream))?;
            let outcome = first.send(&parts, &tape).await;
            if outcome.is_err() {
                first.set_up(false, &pool.upstream);
            }
            let again = {
                let tape = tape.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                retry::again(&outcome, idempotent, tape.untouched(), tape.can_replay())
            };
            let second = match again.then(|| pool.pick(Some(first.addr))).flatten() {
                Some(second) => second,
                None => return outcome,
            };
            let path = parts.uri.path().trim_start_matches('/');
            let (service, method) = path.split_once('/').unwrap_or((path, ""));
            tracing::debug!(rpc.service = service, rpc.method = method, from = %first.addr, to = %second.addr, "gRPC call sent again");
            mailbus_telemetry::metrics::grpc_client_retry(service, method);
            let outcome = second.send(&parts, &tape).await;
            if outcome.is_err() {
                second.set_up(false, &pool.upstream);
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A health server on a loopback port that counts the calls it receives, until `stop` is cancelled
    /// and the task returned has finished.
    async fn replica(stop: CancellationToken) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let counting = tower::layer::layer_fn(move |inner| {
            let count = count.clone();
            tower::service_fn(move |request| {
                count.fetch_add(1, Ordering::SeqCst);
                tower::Service::call(&mut Clone::clone(&inner), request)
            })
        });
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tonic::transport::Server::builder()
            .layer(counting)
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned());
        (addr, served, tokio::spawn(async move { server.await.unwrap() }))
    }

    async fn check(channel: &Balanced) -> bool {
        crate::health_check(channel.clone(), "", Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn calls_spread_over_both_replicas_and_a_stopped_one_leaves_rotation_without_failing_calls() {
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let ((a, served_a, server_a), (b, served_b, _server_b)) =
            (replica(stop_a.clone()).await, replica(stop_b.clone()).await);
        let upstream = Upstream::parse(&format!("http://{a},http://{b}")).unwrap();
        let channel = Balanced::new(&upstream, crate::replica_endpoint);
        for _ in 0..20 {
            assert!(check(&channel).await);
        }
        let (a_before, b_before) = (served_a.load(Ordering::SeqCst), served_b.load(Ordering::SeqCst));
        assert!(a_before >= 5 && b_before >= 5, "A served {a_before}, B {b_before}");

        stop_a.cancel();
        server_a.await.unwrap();
        // Health checks are idempotent: one that meets the stopped replica is sent to the other.
        for n in 0..20 {
            assert!(check(&channel).await, "check {n} after A stopped");
        }
        assert_eq!(channel.replicas().0, [b], "A is out of rotation");
        assert!(served_b.load(Ordering::SeqCst) >= b_before + 20);
    }

    #[tokio::test]
    async fn a_name_is_resolved_before_the_first_call() {
        let stop = CancellationToken::new();
        let (a, served, _server) = replica(stop.clone()).await;
        let upstream = Upstream::parse(&format!("http://localhost:{}", a.port())).unwrap();
        let channel = Balanced::new(&upstream, crate::replica_endpoint);
        assert!(check(&channel).await);
        assert!(channel.replicas().1.contains(&a), "{:?}", channel.replicas());
        assert!(served.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn replicas_join_and_leave_as_the_answer_changes() {
        let stop = CancellationToken::new();
        let ((a, _, _server_a), (b, served_b, _server_b)) = (replica(stop.clone()).await, replica(stop.clone()).await);
        let channel = Balanced::new(&Upstream::parse(&format!("http://{a}")).unwrap(), crate::replica_endpoint);
        assert!(check(&channel).await);
        assert_eq!(served_b.load(Ordering::SeqCst), 0);

        channel.pool.set_addrs(&[a, b].into());
        for _ in 0..10 {
            assert!(check(&channel).await);
        }
        let joined = served_b.load(Ordering::SeqCst);
        assert!(joined >= 4, "B served {joined} of 10 after joining");

        channel.pool.set_addrs(&[b].into());
        assert_eq!(channel.replicas().1, [b]);
        for _ in 0..10 {
            assert!(check(&channel).await);
        }
        assert!(served_b.load(Ordering::SeqCst) >= joined + 10, "every call went to B once A left");
    }

    #[tokio::test]
    async fn a_call_that_never_reached_a_dead_replica_goes_to_another_whatever_its_method() {
        let stop = CancellationToken::new();
        let (b, _, _server) = replica(stop.clone()).await;
        // Nothing listens here: connections are refused before any request byte is read.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let upstream = Upstream::parse(&format!("http://{dead},http://{b}")).unwrap();
        let channel = Balanced::new(&upstream, crate::replica_endpoint);
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        for n in 0..4 {
            // Back in rotation each time, so that calls meet it.
            channel.pool.lock().iter().for_each(|r| r.up.store(true, Ordering::Relaxed));
            // Watch is not idempotent by the list; it is resent only because no replica read it.
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            assert!(health.watch(request).await.is_ok(), "watch {n}");
        }
    }
}
