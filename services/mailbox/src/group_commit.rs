//! Group commit: calls that would each wait for the same lock (deliveries into one account, which all take
//! its mailbox's row lock and its change counter's) queue under their key, and one task at a time per key
//! runs whatever has queued as one batch: one transaction and one commit for many calls, where each call
//! alone would wait its turn for the lock and then for its own commit. Each caller gets its own result once
//! its batch is done. Knows nothing of SQL: the batch runner is given.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Queue<J, R> = Vec<(J, oneshot::Sender<R>)>;

/// The calls waiting for their batch, by key. A key is present while a batch runner works on it.
pub struct GroupCommit<K, J, R> {
    queues: Arc<Mutex<HashMap<K, Queue<J, R>>>>,
    /// At most this many calls go into one batch: a batch holds its locks until it commits.
    max_batch: usize,
}

impl<K, J, R> Clone for GroupCommit<K, J, R> {
    fn clone(&self) -> Self {
        GroupCommit { queues: self.queues.clone(), max_batch: self.max_batch }
    }
}

impl<K, J, R> GroupCommit<K, J, R> {
    /// Batches of at most `max_batch` calls (at least 1: one call alone).
    pub fn new(max_batch: usize) -> Self {
        GroupCommit { queues: Arc::default(), max_batch: max_batch.max(1) }
    }
}

impl<K, J, R> GroupCommit<K, J, R>
where
    K: Hash + Eq + Clone + Send + 'static,
    J: Send + 'static,
    R: Send + 'static,
{
    /// Queues `job` under `key` and waits for its result. The first call for an idle key starts a task
    /// that runs `run` on the queued jobs, in arrival order, until none are left; `run` returns one result
    /// per job, in their order. The task is spawned, so a caller that goes away cannot leave a batch half
    /// done; `None` if the task failed (panicked) before answering.
    pub async fn submit<F, Fut>(&self, key: K, job: J, run: F) -> Option<R>
    where
        F: Fn(Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (answer, result) = oneshot::channel();
        let lead = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            match queues.get_mut(&key) {
                Some(queue) => {
                    queue.push((job, answer));
                    false
                }
                None => {
                    queues.insert(key.clone(), vec![(job, answer)]);
                    true
                }
            }
        };
        if lead {
            tokio::spawn(self.clone().lead(key, run));
        }
        result.await.ok()
    }

    async fn lead<F, Fut>(self, key: K, run: F)
    where
        F: Fn(Vec<J>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        // If this task dies (a panic), the key is freed as it unwinds.
        let mut leaving = Leaving { queues: self.queues.clone(), key: key.clone(), armed: true };
        loop {
            let batch: Queue<J, R> = {
                let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                let Some(queue) = queues.get_mut(&key) else { return };
                if queue.is_empty() {
                    // Freed under the lock: a call that comes next starts a new runner.
                    queues.remove(&key);
                    leaving.armed = false;
                    return;
                }
                let take = queue.len().min(self.max_batch);
                queue.drain(..take).collect()
            };
            let (jobs, answers): (Vec<J>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
            let results = run(jobs).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // A caller that went away has its result dropped; its batch was done all the same.
                let _ = answer.send(result);
            }
        }
    }
}

/// Frees a key when its batch runner dies (a panic) rather than finds its queue empty: the callers still
/// queued get `None`. Disarmed on the way out that already freed the key, which a new runner may by then
/// have taken again.
struct Leaving<K: Hash + Eq, J, R> {
    queues: Arc<Mutex<HashMap<K, Queue<J, R>>>>,
    key: K,
    armed: bool,
}

impl<K: Hash + Eq, J, R> Drop for Leaving<K, J, R> {
    fn drop(&mut self) {
        if self.armed {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn calls_queued_behind_a_batch_run_together_as_the_next_one() {
        let commits: GroupCommit<u8, u32, u32> = GroupCommit::new(2);
        let gate = Arc::new(Notify::new());
        let batches = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let (gate, batches) = (gate.clone(), batches.clone());
            move |jobs: Vec<u32>| {
                let (gate, batches) = (gate.clone(), batches.clone());
                async move {
                    if jobs == [0] {
                        // The first batch waits until the others have queued behind it.
                        gate.notified().await;
                    }
                    batches.lock().unwrap().push(jobs.clone());
                    jobs.iter().map(|j| j * 10).collect()
                }
            }
        };
        let first = tokio::spawn({
            let (commits, run) = (commits.clone(), run.clone());
            async move { commits.submit(1, 0, run).await }
        });
        // The first call leads once its key is taken.
        while !commits.queues.lock().unwrap().contains_key(&1) {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = (1..=3)
            .map(|job| {
                let (commits, run) = (commits.clone(), run.clone());
                tokio::spawn(async move { commits.submit(1, job, run).await })
            })
            .collect();
        while commits.queues.lock().unwrap().get(&1).map_or(0, Vec::len) < 3 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap(), Some(0));
        let mut answers = Vec::new();
        for other in others {
            answers.push(other.await.unwrap());
        }
        assert_eq!(answers, [Some(10), Some(20), Some(30)], "each caller gets its own result");
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches, [vec![0], vec![1, 2], vec![3]], "the three that waited, in batches of at most two");
        assert!(commits.queues.lock().unwrap().is_empty(), "the key is free again");
    }

    #[tokio::test]
    async fn a_panicking_batch_frees_its_key_and_its_callers() {
        let commits: GroupCommit<u8, u32, u32> = GroupCommit::new(8);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let failed = commits
            .submit(7, 1, move |jobs: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(jobs.is_empty(), "a batch that fails");
                    jobs
                }
            })
            .await;
        assert_eq!(failed, None);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(commits.submit(7, 2, |jobs: Vec<u32>| async move { jobs }).await, Some(2), "the key works again");
    }
}
