//! Passwords, stored as argon2id PHC strings.

use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::sync::{OnceLock, mpsc};

use crate::error::MailboxError;

type Job = Box<dyn FnOnce() + Send>;

/// Password hashing on a few dedicated threads. argon2id works in about 19 MiB per hash; on tokio's
/// blocking pool each new thread kept that memory in its own malloc arena (measured: 2.8 GB after 1,000
/// POP3 logins), so hashes run on a fixed set of threads instead, which also caps the CPU a storm of
/// logins can take.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
}

impl Hasher {
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("password-{n}")).spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        Hasher { jobs }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, MailboxError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| MailboxError::Hashing("hashing threads are gone".into()))?;
        result.await.map_err(|_| MailboxError::Hashing("hashing job dropped".into()))
    }

    pub async fn hash(&self, password: Password) -> Result<String, MailboxError> {
        self.run(move || hash(&password)).await?
    }

    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool, MailboxError> {
        self.run(move || verify(&password, stored.as_deref())).await
    }
}

/// A password on its way in or out; never printed.
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Self {
        Password(password)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Hashes with argon2id and the crate's default (OWASP-recommended) cost. Slow on purpose; run it on a
/// blocking thread.
pub fn hash(password: &Password) -> Result<String, MailboxError> {
    PasswordHasher::<PasswordHash>::hash_password(&Argon2::default(), password.0.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| MailboxError::Hashing(e.to_string()))
}

/// Checks a password against a stored hash. With no stored hash (unknown user) it still does the work of
/// one verification, against a hash of a password nobody has, so response time does not reveal which
/// accounts exist.
pub fn verify(password: &Password, stored: Option<&str>) -> bool {
    match stored {
        Some(stored) => matches(password, stored),
        None => {
            static DECOY: OnceLock<Option<String>> = OnceLock::new();
            let decoy = DECOY.get_or_init(|| {
                let secret: String =
                    argon2::password_hash::generate_salt().iter().map(|b| format!("{b:02x}")).collect();
                hash(&Password::new(secret)).ok()
            });
            if let Some(decoy) = decoy {
                let _ = matches(password, decoy);
            }
            false
        }
    }
}

/// The most working memory a hashing thread keeps between verifications: argon2id at the default cost
/// takes 19 MiB, and a stored hash with a higher cost still verifies, in memory given back afterwards.
const KEPT_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// argon2's working memory, reused by each hashing thread. Allocating it afresh for every login
    /// (19 MiB, served by mmap) made the kernel fault in and zero every page each time; without that the
    /// IMAP benchmark's mixed load runs about 30 % faster (BENCHMARKS.md).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Recomputes the hash of `password` with the stored hash's algorithm, version, cost and salt, and
/// compares the outputs in constant time (`Output`'s equality).
fn matches(password: &Password, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut computed = vec![0u8; expected.len()];
    let hashed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        let hashed =
            argon2.hash_password_into_with_memory(password.0.as_bytes(), salt, &mut computed, &mut memory[..blocks]);
        if memory.len() > KEPT_BLOCKS {
            *memory = Vec::new();
        }
        hashed
    });
    hashed.is_ok() && Output::new(&computed).is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let password = Password::new("correct horse".into());
        let stored = hash(&password).unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify(&password, Some(&stored)));
        assert!(!verify(&Password::new("wrong".into()), Some(&stored)));
        assert!(!verify(&password, None));
        assert!(!verify(&password, Some("not a hash")));
        assert_eq!(format!("{password:?}"), "Password(***)");
    }

    #[test]
    fn hashes_of_other_costs_and_variants_verify_in_the_reused_memory() {
        let password = Password::new("battery staple".into());
        let default = hash(&password).unwrap();
        for (algorithm, m_cost, t_cost) in
            [(Algorithm::Argon2id, 8, 1), (Algorithm::Argon2i, 4096, 3), (Algorithm::Argon2d, 32768, 1)]
        {
            let params = Params::new(m_cost, t_cost, 1, None).unwrap();
            let argon2 = Argon2::new(algorithm, Version::V0x13, params);
            let stored = PasswordHasher::<PasswordHash>::hash_password(&argon2, b"battery staple").unwrap().to_string();
            assert!(verify(&password, Some(&stored)), "{stored}");
            assert!(!verify(&Password::new("battery stapler".into()), Some(&stored)), "{stored}");
            // The smaller and larger working memories before it must not disturb the default cost's.
            assert!(verify(&password, Some(&default)));
        }
        let mut tampered = default.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!verify(&password, Some(&tampered)));
    }
}
