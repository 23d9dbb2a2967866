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
use std::sync::OnceLock;

use tokio::runtime::Handle;

/// The process's delivery runtime: one, however many mailbox roles a process binds (the tests bind
/// many), made by the first with its nice value.
static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// Where deliveries run: their own threads at `nice` more than the process's, or (`nice` 0) the
/// caller's.
#[derive(Clone)]
pub struct DeliveryThreads(Option<Handle>);

impl DeliveryThreads {
    pub fn new(nice: i32) -> std::io::Result<Self> {
        if nice == 0 {
            return Ok(DeliveryThreads(None));
        }
        if let Some(handle) = RUNTIME.get() {
            return Ok(DeliveryThreads(Some(handle.clone())));
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Worked out once, from the creating thread's value: a thread the runtime starts from one of its
        // own (the blocking pool's) inherits the lowered value already.
        let target = (own_priority() + nice).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mailbox-deliver")
            .on_thread_start(move || set_priority(target))
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        if RUNTIME.set(handle.clone()).is_err() {
            // Another role of this process made one meanwhile: use it, and let this one go.
            runtime.shutdown_background();
            return Ok(DeliveryThreads(RUNTIME.get().cloned()));
        }
        // Never shut down: a connection a delivery opened is registered with this runtime's reactor, and
        // the pool hands it to any later task.
        std::mem::forget(runtime);
        Ok(DeliveryThreads(Some(handle)))
    }

    /// Runs `work` on the delivery threads and waits for it; `None` if it panicked (logged).
    pub async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Option<T> {
        match &self.0 {
            None => Some(work.await),
            Some(handle) => match handle.spawn(work).await {
                Ok(done) => Some(done),
                Err(error) => {
                    tracing::error!(%error, "a delivery task failed");
                    None
                }
            },
        }
    }
}

/// The calling thread's nice value (Linux keeps one per thread; threads it starts inherit it).
fn own_priority() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and getpriority take and return plain integers and touch no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Sets the calling thread's nice value (setpriority's is absolute, not relative).
fn set_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) != 0 {
            tracing::warn!(nice, "delivery threads keep the normal priority: setpriority failed");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 (nice) counts from after the command name's closing parenthesis.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn deliveries_run_on_threads_of_a_lower_priority() {
        let before = own_nice();
        let threads = DeliveryThreads::new(7).unwrap();
        let nice = threads.run(async { own_nice() }).await.unwrap();
        assert_eq!(nice, (before + 7).min(19));
        let blocking = threads.run(async { tokio::task::spawn_blocking(own_nice).await.unwrap() }).await.unwrap();
        assert_eq!(blocking, (before + 7).min(19), "the blocking pool's threads too");
        assert_eq!(own_nice(), before, "the caller's thread is left as it was");
        let again = DeliveryThreads::new(3).unwrap();
        assert_eq!(again.run(async { own_nice() }).await.unwrap(), nice, "one runtime per process");
        let inline = DeliveryThreads::new(0).unwrap();
        assert_eq!(inline.run(async { own_nice() }).await.unwrap(), before);
        assert!(threads.run(async { panic!("a bug") }).await.is_none(), "a panic is a failed delivery");
    }
}
