//! The sanitised documents of recently opened emails, kept in this process's memory, so that the page's
//! `HEAD` (which only wants the count of blocked images) and its `GET` of the same document do the work
//! once, even when they arrive together. An email never changes (RFC 8621 §4: its content is immutable),
//! so an entry is never stale; it is keyed by the account too, so no other account can be served it.
//! Bounded by entries and by bytes; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Entries kept at most.
const MAX_ENTRIES: usize = 256;
/// Octets of documents kept at most; a document over a quarter of it is not kept at all.
const MAX_BYTES: usize = 32 << 20;

/// One email's document as the frame gets it, and the remote images it left out.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered {
    pub document: String,
    pub blocked_images: usize,
}

/// (account, email id, remote images shown).
pub type Key = (i64, String, bool);

#[derive(Default)]
pub struct RenderCache(Mutex<State>);

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    bytes: usize,
}

struct Entry {
    cell: Arc<OnceCell<Arc<Rendered>>>,
    bytes: usize,
}

impl RenderCache {
    /// The document of `key`: the kept one, the one another request is making, or else made by
    /// `render`. A failure is not kept.
    pub async fn get_or_render<E, F>(&self, key: Key, render: F) -> Result<Arc<Rendered>, E>
    where
        F: AsyncFnOnce() -> Result<Rendered, E>,
    {
        let cell = self.cell(&key);
        let mut fresh = false;
        let made = &mut fresh;
        let rendered = cell
            .get_or_try_init(|| async move {
                *made = true;
                render().await.map(Arc::new)
            })
            .await?
            .clone();
        if fresh {
            self.account(&key, &cell, rendered.document.len());
        }
        Ok(rendered)
    }

    fn cell(&self, key: &Key) -> Arc<OnceCell<Arc<Rendered>>> {
        let mut state = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = state.entries.get(key) {
            return entry.cell.clone();
        }
        let cell = Arc::new(OnceCell::new());
        state.entries.insert(key.clone(), Entry { cell: cell.clone(), bytes: 0 });
        state.order.push_back(key.clone());
        state.evict();
        cell
    }

    /// Counts a finished document, or forgets it if it is too large to keep.
    fn account(&self, key: &Key, cell: &Arc<OnceCell<Arc<Rendered>>>, bytes: usize) {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = &mut *guard;
        let Some(entry) = state.entries.get_mut(key).filter(|entry| Arc::ptr_eq(&entry.cell, cell)) else {
            return;
        };
        if bytes > MAX_BYTES / 4 {
            state.entries.remove(key);
            state.order.retain(|k| k != key);
            return;
        }
        entry.bytes = bytes;
        state.bytes += bytes;
        state.evict();
    }

    #[cfg(test)]
    fn len_and_bytes(&self) -> (usize, usize) {
        let state = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (state.entries.len(), state.bytes)
    }
}

impl State {
    fn evict(&mut self) {
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else { return };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn rendered(size: usize) -> Rendered {
        Rendered { document: "x".repeat(size), blocked_images: 2 }
    }

    #[tokio::test]
    async fn a_document_is_made_once_per_account_email_and_images() {
        let cache = RenderCache::default();
        let made = AtomicUsize::new(0);
        let render = async || -> Result<Rendered, ()> {
            made.fetch_add(1, Ordering::Relaxed);
            Ok(rendered(10))
        };
        let key = (1, "e1".to_owned(), false);
        // HEAD and GET together: one rendering.
        let (a, b) = tokio::join!(cache.get_or_render(key.clone(), render), cache.get_or_render(key.clone(), render));
        assert_eq!((a.unwrap().blocked_images, b.unwrap().blocked_images), (2, 2));
        assert_eq!(made.load(Ordering::Relaxed), 1);
        cache.get_or_render(key, render).await.unwrap();
        assert_eq!(made.load(Ordering::Relaxed), 1);
        // Another account, or the images shown, is another document.
        cache.get_or_render((2, "e1".to_owned(), false), render).await.unwrap();
        cache.get_or_render((1, "e1".to_owned(), true), render).await.unwrap();
        assert_eq!(made.load(Ordering::Relaxed), 3);
        assert_eq!(cache.len_and_bytes(), (3, 30));
    }

    #[tokio::test]
    async fn failures_are_not_kept() {
        let cache = RenderCache::default();
        let key = (1, "e".to_owned(), false);
        assert!(cache.get_or_render(key.clone(), async || Err::<Rendered, _>("down")).await.is_err());
        let again = cache.get_or_render(key, async || Ok::<_, &str>(rendered(1))).await;
        assert_eq!(again.unwrap().document, "x");
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_entries_and_bytes() {
        let cache = RenderCache::default();
        for n in 0..MAX_ENTRIES + 10 {
            cache.get_or_render((1, format!("e{n}"), false), async || Ok::<_, ()>(rendered(1))).await.unwrap();
        }
        assert_eq!(cache.len_and_bytes(), (MAX_ENTRIES, MAX_ENTRIES));
        let big = MAX_BYTES / 4;
        for n in 0..8 {
            cache.get_or_render((2, format!("big{n}"), false), async || Ok::<_, ()>(rendered(big))).await.unwrap();
        }
        let (_, bytes) = cache.len_and_bytes();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        cache.get_or_render((3, "huge".to_owned(), false), async || Ok::<_, ()>(rendered(big + 1))).await.unwrap();
        assert!(cache.len_and_bytes().1 <= MAX_BYTES);
        assert!(!cache.0.lock().unwrap().entries.contains_key(&(3, "huge".to_owned(), false)), "too large to keep");
    }
}
