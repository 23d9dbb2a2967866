//! The SMTP load generator of the side-by-side runs: C connections, each EHLO once and then MAIL / RCPT /
//! DATA transactions in lock-step (no PIPELINING), until M messages got `250`. Message `i` goes to
//! recipient `i mod R`, so a load spreads over R mailboxes; what each recipient got accepted is counted,
//! so that a watcher knows how many messages each mailbox must show. The same generator drives mailbus,
//! Postfix and smtp-sink, so their figures compare.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::{Reply, SmtpClient, ms, percentile, rate};

/// A load's shape on the command line, the same options with the same defaults in smtp-bench and
/// smtp-load.
#[derive(clap::Args, Debug, Clone)]
pub struct Shape {
    /// Messages to get accepted (250) in each run.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Concurrent SMTP connections of every load.
    #[arg(long, default_value_t = 20)]
    pub connections: usize,
    /// Size of each message in octets (headers and body, without the terminating ".").
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
}

/// One load: how many messages over how many connections, the message, and whom it goes to.
pub struct Load {
    pub messages: usize,
    pub connections: usize,
    pub message: Arc<[u8]>,
    pub sender: String,
    /// Never empty: message `i` goes to `recipients[i % len]`.
    pub recipients: Arc<[String]>,
}

/// The messages still to be sent, shared by the connections. A refused message is not retried, but a
/// new one takes its place until `messages` were accepted; the load stops early after as many errors.
struct Budget {
    unclaimed: AtomicUsize,
    errors: AtomicUsize,
    error_limit: usize,
}

impl Budget {
    /// The number of the next message to send, or `None` when none are left.
    fn claim(&self) -> Option<usize> {
        if self.errors.load(Ordering::Relaxed) >= self.error_limit {
            return None;
        }
        let left = self.unclaimed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).ok()?;
        Some(left - 1)
    }

    fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.unclaimed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one connection saw.
struct Tally {
    accepted: usize,
    accepted_by_recipient: Vec<usize>,
    /// Every non-250 end of a transaction, and every I/O failure.
    errors: Vec<String>,
    /// From writing the final "." to reading the 250, per accepted message.
    latencies: Vec<Duration>,
    first_accept: Option<Instant>,
    last_accept: Option<Instant>,
}

impl Tally {
    fn new(recipients: usize) -> Tally {
        Tally {
            accepted: 0,
            accepted_by_recipient: vec![0; recipients],
            errors: Vec::new(),
            latencies: Vec::new(),
            first_accept: None,
            last_accept: None,
        }
    }
}

/// What all connections saw together, from the start of the load.
pub struct LoadReport {
    pub start: Instant,
    /// The wall clock at `start`, to place the run among time-stamped records (strace's).
    pub start_wall: SystemTime,
    pub accepted: usize,
    /// Indexed like [`Load::recipients`].
    pub accepted_by_recipient: Vec<usize>,
    pub errors: Vec<String>,
    /// Sorted.
    pub latencies: Vec<Duration>,
    pub first_accept: Option<Instant>,
    pub last_accept: Option<Instant>,
}

impl Load {
    pub async fn run(&self, server: SocketAddr) -> LoadReport {
        let budget = Arc::new(Budget {
            unclaimed: AtomicUsize::new(self.messages),
            errors: AtomicUsize::new(0),
            error_limit: self.messages,
        });
        let start = Instant::now();
        let start_wall = SystemTime::now();
        let senders = (0..self.connections).map(|_| {
            let connection = Connection {
                server,
                sender: self.sender.clone(),
                recipients: self.recipients.clone(),
                message: self.message.clone(),
            };
            tokio::spawn(connection.send_share(budget.clone()))
        });
        let mut report = LoadReport {
            start,
            start_wall,
            accepted: 0,
            accepted_by_recipient: vec![0; self.recipients.len()],
            errors: Vec::new(),
            latencies: Vec::with_capacity(self.messages),
            first_accept: None,
            last_accept: None,
        };
        for finished in futures::future::join_all(senders).await {
            let tally = finished.unwrap_or_else(|e| {
                let mut tally = Tally::new(self.recipients.len());
                tally.errors.push(e.to_string());
                tally
            });
            report.accepted += tally.accepted;
            for (sum, count) in report.accepted_by_recipient.iter_mut().zip(&tally.accepted_by_recipient) {
                *sum += count;
            }
            report.errors.extend(tally.errors);
            report.latencies.extend(tally.latencies);
            report.first_accept = earliest(report.first_accept, tally.first_accept);
            report.last_accept = report.last_accept.max(tally.last_accept);
        }
        report.latencies.sort_unstable();
        report
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How one transaction ended.
enum Sent {
    /// `250` after the final ".": how long it took from writing the "." line.
    Accepted(Duration),
    /// Any other reply; the connection goes on unless it was 421.
    Refused(Reply),
}

/// One connection of the load.
struct Connection {
    server: SocketAddr,
    sender: String,
    recipients: Arc<[String]>,
    message: Arc<[u8]>,
}

impl Connection {
    /// This connection's share of the load: it claims messages until none are left.
    async fn send_share(self, budget: Arc<Budget>) -> Tally {
        let mut tally = Tally::new(self.recipients.len());
        let mut client: Option<SmtpClient> = None;
        while let Some(number) = budget.claim() {
            let recipient = number % self.recipients.len();
            let connection = match client.as_mut() {
                Some(connection) => connection,
                None => match open(self.server).await {
                    Ok(connection) => client.insert(connection),
                    Err(error) => {
                        tally.errors.push(format!("{error:#}"));
                        budget.failed();
                        continue;
                    }
                },
            };
            match self.send(connection, &self.recipients[recipient]).await {
                Ok(Sent::Accepted(latency)) => {
                    let now = Instant::now();
                    tally.accepted += 1;
                    tally.accepted_by_recipient[recipient] += 1;
                    tally.latencies.push(latency);
                    tally.first_accept.get_or_insert(now);
                    tally.last_accept = Some(now);
                }
                Ok(Sent::Refused(reply)) => {
                    if reply.code == 421 {
                        client = None;
                    }
                    tally.errors.push(reply.text);
                    budget.failed();
                }
                Err(error) => {
                    tally.errors.push(format!("{error:#}"));
                    budget.failed();
                    client = None;
                }
            }
        }
        if let Some(connection) = client {
            connection.quit().await;
        }
        tally
    }

    /// MAIL, RCPT, DATA, the message, "." on `client`. A refused MAIL, RCPT or DATA is followed by RSET.
    async fn send(&self, client: &mut SmtpClient, recipient: &str) -> anyhow::Result<Sent> {
        Ok(match client.send_timed(&self.sender, recipient, &self.message).await? {
            (reply, Some(latency)) if reply.code == 250 => Sent::Accepted(latency),
            (reply, _) => Sent::Refused(reply),
        })
    }
}

/// Connects, reads the greeting and says EHLO.
pub async fn open(server: SocketAddr) -> anyhow::Result<SmtpClient> {
    SmtpClient::open_as(server, "smtp-bench.localhost").await
}

impl LoadReport {
    /// Nearest-rank percentile of the sorted latencies.
    pub fn percentile(&self, p: usize) -> Duration {
        percentile(&self.latencies, p)
    }

    /// From the start of the load to the last 250.
    pub fn elapsed(&self) -> Duration {
        self.last_accept.map_or(Duration::ZERO, |last| last.duration_since(self.start))
    }

    /// Accepted messages per second, from the start of the load to the last 250.
    pub fn rate(&self) -> f64 {
        rate(self.accepted, self.elapsed())
    }

    /// The wall clock at `instant` (one of this run's).
    pub fn wall_clock(&self, instant: Instant) -> SystemTime {
        self.start_wall + instant.saturating_duration_since(self.start)
    }

    pub fn print(&self) {
        println!(
            "accepted {} messages in {:.2} s = {:.0} msgs/s",
            self.accepted,
            self.elapsed().as_secs_f64(),
            self.rate()
        );
        println!(
            "latency of the final 250: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.percentile(50)),
            ms(self.percentile(99)),
            ms(self.latencies.last().copied().unwrap_or_default())
        );
        println!("errors: {}", self.errors.len());
        let mut distinct: Vec<&String> = self.errors.iter().collect();
        distinct.sort();
        distinct.dedup();
        for error in distinct.iter().take(5) {
            println!("  {error}");
        }
    }

    /// One line: the rate, the p50 and p99 of the final 250, and the errors if any.
    pub fn print_line(&self, side: &str) {
        let errors = if self.errors.is_empty() {
            String::new()
        } else {
            let first = self.errors.first().map_or("", String::as_str);
            format!(", {} errors (first: {first})", self.errors.len())
        };
        println!(
            "{side}: {} accepted in {:.2} s = {:.0} msgs/s, final 250 p50 {:.2} ms p99 {:.2} ms{errors}",
            self.accepted,
            self.elapsed().as_secs_f64(),
            self.rate(),
            ms(self.percentile(50)),
            ms(self.percentile(99)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_numbers_every_message_once_and_gives_a_failed_one_back() {
        let budget = Budget { unclaimed: AtomicUsize::new(3), errors: AtomicUsize::new(0), error_limit: 2 };
        assert_eq!(budget.claim(), Some(2));
        assert_eq!(budget.claim(), Some(1));
        budget.failed();
        assert_eq!(budget.claim(), Some(1));
        assert_eq!(budget.claim(), Some(0));
        assert_eq!(budget.claim(), None);
        budget.failed();
        assert_eq!(budget.claim(), None, "the second error reaches the limit");
    }
}
