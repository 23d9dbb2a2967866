//! Passwords, stored as argon2id PHC strings.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::error::MailboxError;

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
