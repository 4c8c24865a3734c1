//! Who may see a page alnrisk serves: a password file of argon2id hashes, and the signed session cookie a login
//! earns.
//!
//! - The password file holds one `user:$argon2id$v=19$…` line per person (PHC strings; `#` starts a comment).
//!   `alnrisk console-user` writes one; the daemon only reads it, at start.
//! - A login sets `alnrisk_session=user.expiry.mac` (HttpOnly, SameSite=Strict, Secure over TLS), where `mac` is
//!   the HMAC-SHA256 of `user.expiry` under a secret kept in the state folder. No session table: a restarted
//!   daemon still accepts the cookies it issued, so an open page reconnects by itself; a changed secret ends every
//!   session.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The session cookie's name.
pub const COOKIE: &str = "alnrisk_session";

/// A user name: 1–64 of `[A-Za-z0-9._-]` (it is part of the cookie).
pub fn user_name_ok(user: &str) -> bool {
    (1..=64).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The argon2id PHC string of `password` with a random salt (argon2's default cost: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String> {
    let salt_bytes = crate::rng::os_random::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Login(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Login(format!("argon2: {e}")))
}

/// The password file, read.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    users: BTreeMap<String, String>,
    /// The hash an unknown user's password is checked against (so that it costs the same time).
    decoy: String,
}

impl PasswordFile {
    /// Read `path` (every line a valid `user:hash`, else an error naming the line).
    pub fn load(path: &Path) -> Result<PasswordFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|reason| Error::Config {
            file: path.to_path_buf(),
            key: "console.password_file".into(),
            reason,
        })
    }

    /// Parse the file's text.
    pub fn parse(text: &str) -> std::result::Result<PasswordFile, String> {
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not user:hash", n + 1));
            };
            if !user_name_ok(user) {
                return Err(format!("line {}: a user name is 1-64 of A-Z a-z 0-9 . _ -", n + 1));
            }
            match PasswordHash::new(hash) {
                Ok(h) if h.algorithm.as_str() == "argon2id" => {}
                _ => {
                    return Err(format!(
                        "line {}: not an argon2id hash (use alnrisk console-user)",
                        n + 1
                    ));
                }
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no user: nobody could log in".into());
        }
        let salt = SaltString::encode_b64(b"alnrisk-decoy-salt").map_err(|e| e.to_string())?;
        let decoy = argon2::Argon2::default()
            .hash_password(b"decoy", &salt)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(PasswordFile { users, decoy })
    }

    /// How many users may log in.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether nobody may (never true of a loaded file).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `user`'s. An unknown user costs the same hash as a known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let known = self.users.get(user);
        let hash = known.unwrap_or(&self.decoy);
        let ok = PasswordHash::new(hash)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known.is_some()
    }
}

/// Add `user` with `password` to the password file at `path` (created, mode 0640), or change their password;
/// `true` when the user is new. Other lines are kept as they are.
pub fn set_user(path: &Path, user: &str, password: &str) -> Result<bool> {
    if !user_name_ok(user) {
        return Err(Error::Login(format!(
            "{user:?}: a user name is 1-64 of A-Z a-z 0-9 . _ -"
        )));
    }
    if password.chars().count() < 8 {
        return Err(Error::Login("a password has at least 8 characters".into()));
    }
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let line = format!("{user}:{}", hash_password(password)?);
    let mut added = true;
    let mut text = String::new();
    for l in old.lines() {
        if l.split_once(':').is_some_and(|(u, _)| u == user) {
            added = false;
            text.push_str(&line);
        } else {
            text.push_str(l);
        }
        text.push('\n');
    }
    if added {
        text.push_str(&line);
        text.push('\n');
    }
    crate::daemon::fsio::write_durable(path, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
    }
    Ok(added)
}

/// Issues and checks session cookies.
#[derive(Clone)]
pub struct Sessions {
    key: Vec<u8>,
    lifetime_s: u64,
}

impl Sessions {
    /// Sessions signed with `key`, lasting `lifetime_s`.
    pub fn new(key: Vec<u8>, lifetime_s: u64) -> Sessions {
        Sessions { key, lifetime_s }
    }

    fn mac(&self, body: &str) -> String {
        // HMAC takes a key of any length
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        m.update(body.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The cookie value for `user`, valid from `now` (Unix seconds).
    pub fn issue(&self, user: &str, now: u64) -> String {
        let body = format!("{user}.{}", now + self.lifetime_s);
        format!("{body}.{}", self.mac(&body))
    }

    /// The user of a cookie value, if it is ours and not expired at `now`.
    pub fn check(&self, value: &str, now: u64) -> Option<String> {
        let (body, mac) = value.rsplit_once('.')?;
        let (user, expiry) = body.rsplit_once('.')?;
        let expiry: u64 = expiry.parse().ok()?;
        let expected = self.mac(body);
        // constant-time comparison of the MACs
        let same = expected.len() == mac.len()
            && expected.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        (same && now < expiry && user_name_ok(user)).then(|| user.to_string())
    }

    /// The `Set-Cookie` header value for `user` (`secure` over TLS).
    pub fn set_cookie(&self, user: &str, now: u64, secure: bool) -> String {
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.issue(user, now),
            self.lifetime_s,
            if secure { "; Secure" } else { "" }
        )
    }

    /// The user a request's `Cookie` header logs in, if any.
    pub fn user_of(&self, cookie_header: Option<&str>, now: u64) -> Option<String> {
        cookie_header?
            .split(';')
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .find_map(|v| self.check(v, now))
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_another_does_not() {
        let h = hash_password("correct horse").unwrap();
        let f = PasswordFile::parse(&format!("# console users\ntech:{h}\n")).unwrap();
        assert!(f.verify("tech", "correct horse"));
        assert!(!f.verify("tech", "correct horsE"));
        assert!(!f.verify("nobody", "correct horse"));
    }

    #[test]
    fn a_password_file_with_a_bad_line_is_refused_naming_it() {
        let h = hash_password("x").unwrap();
        assert!(PasswordFile::parse("").unwrap_err().contains("no user"));
        assert!(
            PasswordFile::parse(&format!("tech:{h}\nplain:secret\n"))
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            PasswordFile::parse(&format!("te ch:{h}\n"))
                .unwrap_err()
                .contains("line 1")
        );
        let bcrypt = "tech:$2b$12$abcdefghijklmnopqrstuuNpZ3fMx1yXBbH1oJ5ymBe7Zr1q9J0Ve";
        assert!(PasswordFile::parse(bcrypt).unwrap_err().contains("argon2id"));
    }

    #[test]
    fn a_session_cookie_holds_until_it_expires_and_cannot_be_forged() {
        let s = Sessions::new(vec![7; 32], 3600);
        let v = s.issue("tech", 1000);
        assert_eq!(s.check(&v, 1000).as_deref(), Some("tech"));
        assert_eq!(s.check(&v, 4599).as_deref(), Some("tech"));
        assert_eq!(s.check(&v, 4600), None, "expired");
        // another user, or a later expiry, with the old MAC
        let (_, mac) = v.rsplit_once('.').unwrap();
        assert_eq!(s.check(&format!("admin.4600.{mac}"), 1000), None);
        assert_eq!(s.check(&format!("tech.99999.{mac}"), 1000), None);
        // another secret
        assert_eq!(Sessions::new(vec![8; 32], 3600).check(&v, 1000), None);
        let header = format!("theme=dark; {COOKIE}={v}; other=1");
        assert_eq!(s.user_of(Some(&header), 1000).as_deref(), Some("tech"));
        assert_eq!(s.user_of(Some("theme=dark"), 1000), None);
    }
}
