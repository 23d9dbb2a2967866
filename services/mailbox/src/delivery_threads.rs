//! The threads that store deliveries, at a lower CPU priority than the rest of the node (`nice`,
//! `MAILBUS_DELIVERY_NICE`). A burst of mail is a queue's to absorb: while the CPUs are busy, SMTP
//! acceptance (whose senders wait on their 250) and the mailbox role's readers (IMAP, POP3, JMAP) come
//! first, and the backlog is stored as soon as they leave room, as Exim's `queue_only_load` and
//! sendmail's `QueueLA` defer delivery under load. An idle node stores at once, as fast as before: nice
//! only decides who runs when more want to than there are CPUs. Measured on two CPUs (BENCHMARKS.md,
//! issue 18): acceptance while the relay delivers rose from about 1,600 to 2,600 messages a second, end
//! to end stayed where it was.
//!
//! Deliver's calls arrive on the gRPC server's threads, which read the upload; the parsing, Sieve and
//! SQL run here. The runtime lives as long as the process: database connections opened by its tasks
//! serve every task after them.

use std::future::Future;

use tokio::runtime::Handle;

/// Where deliveries run: their own threads at `nice`, or (`nice` 0) the caller's.
#[derive(Clone)]
pub struct DeliveryThreads(Option<Handle>);

impl DeliveryThreads {
    pub fn new(nice: i32) -> std::io::Result<Self> {
        if nice == 0 {
            return Ok(DeliveryThreads(None));
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mailbox-deliver")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        // Never shut down: a connection a delivery opened is registered with this runtime's reactor, and
        // the pool hands it to any later task.
        std::mem::forget(runtime);
        Ok(DeliveryThreads(Some(handle)))
    }

    /// Runs `work` on the delivery threads and waits for it.
    pub async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Option<T> {
        match &self.0 {
            None => Some(work.await),
            Some(handle) => handle.spawn(work).await.ok(),
        }
    }
}

/// Raises the calling thread's nice value (Linux keeps one per thread; threads it starts inherit it).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, thread, nice) != 0 {
            tracing::warn!(nice, "delivery threads keep the normal priority: setpriority failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 (nice) counts from after the command name's closing parenthesis.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn deliveries_run_on_threads_of_the_given_nice_value() {
        let before = own_nice();
        let threads = DeliveryThreads::new(7).unwrap();
        let nice = threads.run(async { own_nice() }).await.unwrap();
        assert_eq!(nice, (before + 7).min(19));
        let blocking = threads.run(async { tokio::task::spawn_blocking(own_nice).await.unwrap() }).await.unwrap();
        assert_eq!(blocking, (before + 7).min(19), "the blocking pool's threads too");
        assert_eq!(own_nice(), before, "the caller's thread is left as it was");
        let inline = DeliveryThreads::new(0).unwrap();
        assert_eq!(inline.run(async { own_nice() }).await.unwrap(), before);
    }
}
