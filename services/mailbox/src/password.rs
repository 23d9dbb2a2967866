//! Passwords, stored as argon2id PHC strings.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

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
/// one verification, so response time does not reveal which accounts exist.
pub fn verify(password: &Password, stored: Option<&str>) -> bool {
    let argon2 = Argon2::default();
    let Some(stored) = stored else {
        let _ = hash(password);
        return false;
    };
    // The comparison inside verify_password is constant-time.
    argon2.verify_password(password.0.as_bytes(), stored).is_ok()
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
}
