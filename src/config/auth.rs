//! HTTP basic authentication (`auth-basic = "Realm"`, `auth-basic-user-file`):
//! an Apache htpasswd file loaded whole when the sites are built (start, `--check`,
//! every SIGHUP), and the check of a request's `Authorization` against it.
//!
//! Entries may be bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache MD5 (`$apr1$`) or SHA-1
//! (`{SHA}`). Anything else — a plain-text password, DES `crypt`, a typo — is
//! refused at load with the file and line, never accepted as something it is not.
//! Every comparison of a computed hash with the stored one is in constant time, and
//! a name that is not in the file costs a hash like one that is.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::settings::ConfigError;

/// bcrypt costs accepted: `htpasswd -B` makes 4 to 17; more would let one request
/// hold a worker for minutes.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=17;

/// One stored password hash.
#[derive(Debug, Clone)]
enum Hash {
    /// The whole `$2y$…` string, checked by the `bcrypt` crate.
    Bcrypt(String),
    /// `$apr1$SALT$HASH`: the salt and the 22 characters of the hash.
    Apr1 { salt: String, hash: String },
    /// `{SHA}` and the base64 of the 20-byte SHA-1 digest.
    Sha1([u8; 20]),
}

impl Hash {
    fn parse(s: &str) -> Result<Hash, String> {
        if ["$2y$", "$2a$", "$2b$"].iter().any(|p| s.starts_with(p)) {
            let cost = s.get(4..6).and_then(|c| c.parse::<u32>().ok());
            return match cost {
                Some(c) if BCRYPT_COSTS.contains(&c) && s.len() == 60 => Ok(Hash::Bcrypt(s.into())),
                Some(c) if s.len() == 60 => Err(format!("bcrypt cost {c} is outside 4..=17")),
                _ => Err("malformed bcrypt hash".into()),
            };
        }
        if let Some(rest) = s.strip_prefix("$apr1$") {
            return match rest.split_once('$') {
                Some((salt, hash)) if salt.len() <= 8 && !salt.is_empty() && hash.len() == 22 => {
                    Ok(Hash::Apr1 {
                        salt: salt.into(),
                        hash: hash.into(),
                    })
                }
                _ => Err("malformed $apr1$ hash".into()),
            };
        }
        if let Some(b64) = s.strip_prefix("{SHA}") {
            let bytes = STANDARD.decode(b64).map_err(|_| "malformed {SHA} hash")?;
            return <[u8; 20]>::try_from(bytes.as_slice())
                .map(Hash::Sha1)
                .map_err(|_| "malformed {SHA} hash".into());
        }
        Err(
            "not a bcrypt ($2y$), $apr1$ or {SHA} hash (plain-text and crypt \
             passwords are refused; make entries with htpasswd -B)"
                .into(),
        )
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            // A hash that was checked at load still fails closed on any error.
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Apr1 { salt, hash } => {
                let made = apr1(password, salt.as_bytes());
                made.ct_eq(hash.as_bytes()).into()
            }
            Hash::Sha1(digest) => Sha1::digest(password).as_slice().ct_eq(digest).into(),
        }
    }
}

/// Credentials missing, malformed, of an unknown user or with a wrong password
/// (one answer for all, so a client learns nothing from which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied;

/// The users of one htpasswd file and the realm they are asked for.
#[derive(Debug)]
pub struct BasicAuth {
    users: HashMap<String, Hash>,
    /// Checked for a name that is not in the file, so it takes as long.
    decoy: Hash,
    /// `Basic realm="…"`, the `WWW-Authenticate` value of a 401.
    challenge: Vec<u8>,
}

impl BasicAuth {
    /// Reads the htpasswd file at `path` for `realm`. Refuses a realm that cannot be
    /// a quoted string, an unreadable or empty file, a line without `user:hash`, a
    /// user given twice and any hash that is not bcrypt, apr1 or SHA-1, naming the
    /// file and line.
    pub fn load(path: &Path, realm: &str) -> Result<BasicAuth, ConfigError> {
        if realm.is_empty()
            || realm
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f)
        {
            return Err(ConfigError(format!(
                "auth-basic {realm:?}: a realm is non-empty text without quotes, backslashes or control characters"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("auth-basic-user-file {}: {e}", path.display())))?;
        let at = |line: usize, why: String| {
            ConfigError(format!(
                "auth-basic-user-file {}:{line}: {why}",
                path.display()
            ))
        };
        let mut users = HashMap::new();
        let mut decoy = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':').filter(|(u, _)| !u.is_empty()) else {
                return Err(at(i + 1, "expected `user:hash`".into()));
            };
            let hash =
                Hash::parse(hash).map_err(|why| at(i + 1, format!("user {user:?}: {why}")))?;
            decoy.get_or_insert_with(|| hash.clone());
            if users.insert(user.to_string(), hash).is_some() {
                return Err(at(i + 1, format!("user {user:?} is given twice")));
            }
        }
        let decoy = decoy.ok_or_else(|| {
            ConfigError(format!("auth-basic-user-file {}: no users", path.display()))
        })?;
        Ok(BasicAuth {
            users,
            decoy,
            challenge: format!("Basic realm=\"{realm}\"").into_bytes(),
        })
    }

    /// The `WWW-Authenticate` value to answer a refused request with.
    pub fn challenge(&self) -> &[u8] {
        &self.challenge
    }

    /// Checks an `Authorization` value (`Basic base64(user:password)`): the user's
    /// name when the password is right, else `Err` (missing, malformed, unknown user
    /// or wrong password alike: [`Denied`]).
    pub fn check(&self, authorization: Option<&str>) -> Result<&str, Denied> {
        let value = authorization.ok_or(Denied)?.trim();
        let (scheme, b64) = value.split_once(' ').ok_or(Denied)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Denied);
        }
        let decoded = STANDARD.decode(b64.trim()).map_err(|_| Denied)?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or(Denied)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let found = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get_key_value(u));
        match found {
            Some((name, hash)) if hash.verify(password) => Ok(name.as_str()),
            Some(_) => Err(Denied),
            None => {
                // As long as a wrong password for a real user would take.
                let _ = self.decoy.verify(password);
                Err(Denied)
            }
        }
    }
}

/// The Apache MD5-crypt hash (`$apr1$`, the BSD MD5 crypt with another magic) of
/// `password` with `salt` (at most 8 bytes): the 22 characters after the salt.
fn apr1(password: &[u8], salt: &[u8]) -> Vec<u8> {
    const MAGIC: &[u8] = b"$apr1$";
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alt[..chunk.len()]);
    }
    let mut n = password.len();
    while n > 0 {
        ctx.update(if n & 1 == 1 {
            &[0u8][..]
        } else {
            &password[..1]
        });
        n >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(password);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(22);
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize]);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    push(f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apr1_matches_htpasswd() {
        // htpasswd -nbm user secret, salt fixed by hand from a real run.
        assert_eq!(apr1(b"password", b"lZL6V/ci"), b"eIMz/iKDkbtys/uU7LEK00");
    }

    fn auth(file: &str) -> Result<BasicAuth, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, file).unwrap();
        BasicAuth::load(&p, "Realm")
    }

    #[test]
    fn entries_and_checks() {
        let a = auth("# comment\n\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(a.check(Some(&basic("bob:password"))), Ok("bob"));
        assert_eq!(a.check(Some(&basic("bob:Password"))), Err(Denied));
        assert_eq!(a.check(Some(&basic("eve:password"))), Err(Denied));
        assert_eq!(a.check(Some("Basic !!!")), Err(Denied));
        assert_eq!(a.check(Some("Bearer x")), Err(Denied));
        assert_eq!(a.check(None), Err(Denied));
        assert_eq!(a.challenge(), b"Basic realm=\"Realm\"");
        let e = auth("a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nb:plain\n")
            .unwrap_err()
            .0;
        assert!(e.contains("users:2: user \"b\": not a bcrypt"), "{e}");
        assert!(auth("\n").unwrap_err().0.contains("no users"));
        assert!(auth("nocolon\n").unwrap_err().0.contains(":1: expected"));
        let twice = "a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\na:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n";
        assert!(auth(twice).unwrap_err().0.contains("given twice"));
    }
}
