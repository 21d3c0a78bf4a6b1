//! HTTPS configuration: certificates and keys read from PEM files, the store that
//! picks one by SNI, and the rustls server configuration (TLS 1.2 and 1.3, ALPN
//! `http/1.1`, session tickets and a bounded session cache).
//!
//! The store sits behind an [`ArcSwap`]: SIGHUP loads every pair again and swaps
//! the new store in only when all of them loaded, so new handshakes use the new
//! certificates and a failed reload leaves the running ones in place. Key material
//! is never formatted into a message: errors name the file and what is wrong.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::file::Loaded;
use crate::config::settings::ConfigError;

/// Sessions the server-side resumption cache holds (TLS 1.2 session ids, and
/// TLS 1.3 when tickets are off); the oldest go first.
const SESSION_CACHE: usize = 16 * 1024;
/// A certificate expiring within this many days is warned about.
const EXPIRY_WARN_DAYS: u64 = 14;

/// The certificate and key files of the top level and of each `[[vhost]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The top-level pair: used without SNI, or for an SNI that names no vhost.
    pub default: (PathBuf, PathBuf),
    /// `(host, cert, key)` per vhost (a vhost without its own pair has the top
    /// level's, inherited from the file's top-level keys).
    pub hosts: Vec<(String, PathBuf, PathBuf)>,
}

impl CertFiles {
    /// The files a configuration names; `None` when TLS is off. A vhost with a
    /// certificate but no top-level one is an error: a client without SNI would
    /// have nothing to be answered with.
    pub fn of(loaded: &Loaded) -> Result<Option<CertFiles>, ConfigError> {
        let pair = |c: &crate::config::Config| match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((cert.clone(), key.clone()))),
            (None, None) => Ok(None),
            _ => Err(ConfigError(
                "tls-cert and tls-key go together: give both or neither".into(),
            )),
        };
        let default = pair(&loaded.config)?;
        let mut hosts = Vec::with_capacity(loaded.vhosts.len());
        for v in &loaded.vhosts {
            match (pair(&v.config)?, &default) {
                // A vhost without a pair of its own answers with the top level's (so
                // a request for it on another vhost's certificate is misdirected).
                (own, Some(top)) => {
                    let (c, k) = own.unwrap_or_else(|| top.clone());
                    for host in &v.hosts {
                        hosts.push((host.clone(), c.clone(), k.clone()))
                    }
                }
                (Some(_), None) => {
                    return Err(ConfigError(format!(
                        "vhost {:?} has tls-cert but the top level has none (needed for \
                         clients that send no SNI)",
                        v.host
                    )))
                }
                (None, _) => {}
            }
        }
        Ok(default.map(|default| CertFiles { default, hosts }))
    }
}

/// One loaded certificate chain and key.
struct Pair {
    files: (PathBuf, PathBuf),
    key: Arc<CertifiedKey>,
    /// The leaf's notAfter, seconds since the epoch (when it could be read).
    not_after: Option<u64>,
}

/// The certificates of one configuration, picked by server name.
pub struct CertStore {
    default: Arc<CertifiedKey>,
    /// Lower-case host name and its certificate; a vhost with the top level's files
    /// shares the top level's `Arc`, so "same certificate" is a pointer comparison.
    hosts: Vec<(String, Arc<CertifiedKey>)>,
    /// Notes for the operator found while loading (expiry, key file permissions).
    warnings: Vec<String>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only which hosts have certificates.
        f.debug_struct("CertStore")
            .field(
                "hosts",
                &self.hosts.iter().map(|(h, _)| h).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads every pair in `files` (a pair named twice is loaded once). An
    /// unreadable file, a file without a certificate or key, or a key that does not
    /// match its certificate is an error naming the file.
    pub fn load(files: &CertFiles) -> Result<CertStore, ConfigError> {
        let provider = provider();
        let mut pairs: Vec<Pair> = Vec::new();
        let mut get = |cert: &Path, key: &Path| -> Result<Arc<CertifiedKey>, ConfigError> {
            if let Some(p) = pairs.iter().find(|p| p.files.0 == cert && p.files.1 == key) {
                return Ok(p.key.clone());
            }
            let p = load_pair(cert, key, &provider)?;
            let k = p.key.clone();
            pairs.push(p);
            Ok(k)
        };
        let default = get(&files.default.0, &files.default.1)?;
        let mut hosts = Vec::with_capacity(files.hosts.len());
        for (host, cert, key) in &files.hosts {
            hosts.push((host.clone(), get(cert, key)?));
        }
        let now = unix_now();
        let mut warnings = Vec::new();
        for p in &pairs {
            if let Some(w) = expiry_warning(&p.files.0, p.not_after, now) {
                warnings.push(w);
            }
            if let Some(w) = key_mode_warning(&p.files.1) {
                warnings.push(w);
            }
        }
        Ok(CertStore {
            default,
            hosts,
            warnings,
        })
    }

    /// The certificate for a server name: the vhost's, else the top level's.
    pub fn for_name(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        name.and_then(|n| self.host(n)).unwrap_or(&self.default)
    }

    /// The vhost certificate for `name`: an exact name first, then the wildcard
    /// (`*.example.com`) with the longest suffix, as requests pick their site.
    fn host(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let exact = self
            .hosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name));
        let wild = || {
            self.hosts
                .iter()
                .filter_map(|(h, k)| Some((h.strip_prefix('*')?, k)))
                .filter(|(s, _)| crate::config::sites::ends_with(name, s))
                .max_by_key(|(s, _)| s.len())
        };
        exact.map(|(_, k)| k).or_else(|| wild().map(|(_, k)| k))
    }

    /// Whether a request for vhost `host` on a connection whose handshake named
    /// `sni` is misdirected: `host` is a vhost whose certificate is not the one the
    /// handshake chose (RFC 9110 §15.5.20).
    pub fn misdirected(&self, sni: Option<&str>, host: &str) -> bool {
        match self.host(host) {
            Some(k) => !Arc::ptr_eq(k, self.for_name(sni)),
            None => false,
        }
    }

    /// What the operator should hear about: certificates near or past expiry, key
    /// files others may read.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Picks a certificate by SNI from the current store; SIGHUP swaps the store.
#[derive(Debug)]
pub struct Resolver {
    store: ArcSwap<CertStore>,
}

impl Resolver {
    /// A resolver over `store`.
    pub fn new(store: CertStore) -> Resolver {
        Resolver {
            store: ArcSwap::from_pointee(store),
        }
    }

    /// The current store.
    pub fn store(&self) -> arc_swap::Guard<Arc<CertStore>> {
        self.store.load()
    }

    /// Loads `files` again; on success new handshakes use them, on failure the
    /// running certificates stay and the error is returned.
    pub fn reload(&self, files: &CertFiles) -> Result<(), ConfigError> {
        let store = CertStore::load(files)?;
        for w in store.warnings() {
            log::warn!("{w}");
        }
        self.store.store(Arc::new(store));
        Ok(())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.store.load().for_name(hello.server_name()).clone())
    }
}

/// What the server needs for HTTPS: the rustls configuration every connection is
/// made from, and the resolver behind it (for 421 decisions and reloads).
#[derive(Debug)]
pub struct TlsSetup {
    /// Shared by every connection.
    pub config: Arc<ServerConfig>,
    /// The certificates, by server name.
    pub resolver: Arc<Resolver>,
    /// The files loaded at start (reloaded from when there is no config file).
    pub files: parking_lot::Mutex<CertFiles>,
}

impl TlsSetup {
    /// Loads the certificates of `loaded` and builds the server configuration;
    /// `None` when TLS is off.
    pub fn new(loaded: &Loaded) -> Result<Option<TlsSetup>, ConfigError> {
        let Some(files) = CertFiles::of(loaded)? else {
            return Ok(None);
        };
        let store = CertStore::load(&files)?;
        for w in store.warnings() {
            log::warn!("{w}");
        }
        let resolver = Arc::new(Resolver::new(store));
        let config = server_config(resolver.clone())?;
        Ok(Some(TlsSetup {
            config,
            resolver,
            files: parking_lot::Mutex::new(files),
        }))
    }

    /// SIGHUP: loads the certificates `loaded` names (the ones loaded before when
    /// `None`). A failure is logged once, naming the file, and the running
    /// certificates stay.
    pub fn reload(&self, loaded: Option<&Loaded>) {
        let files = match loaded.map(CertFiles::of) {
            None => self.files.lock().clone(),
            Some(Ok(Some(f))) => f,
            Some(Ok(None)) => {
                log::warn!("reload: TLS cannot be turned off without a restart; ignored");
                return;
            }
            Some(Err(e)) => {
                log::error!("reload of TLS certificates failed, keeping the running ones: {e}");
                return;
            }
        };
        match self.resolver.reload(&files) {
            Ok(()) => {
                log::info!("TLS certificates reloaded");
                *self.files.lock() = files;
            }
            Err(e) => {
                log::error!("reload of TLS certificates failed, keeping the running ones: {e}")
            }
        }
    }
}

/// The crypto provider: *ring*, which builds without cmake (aws-lc-rs needs it).
/// rustls marks it deprecated because it has no post-quantum key exchange
/// (X25519MLKEM768); X25519, P-256 and P-384 remain.
#[allow(deprecated)]
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The server configuration: TLS 1.2 and 1.3 with rustls's default cipher suites,
/// ALPN `http/1.1`, stateless tickets and a bounded server-side session cache.
fn server_config(resolver: Arc<Resolver>) -> Result<Arc<ServerConfig>, ConfigError> {
    let tls_err = |e: rustls::Error| ConfigError(format!("TLS setup: {e}"));
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(tls_err)?;
    Ok(Arc::new(config))
}

/// Reads and checks one certificate chain and its key.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Pair, ConfigError> {
    let cert_text = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError(format!("tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ConfigError(format!(
            "tls-cert {}: no PEM certificate in the file",
            cert.display()
        )));
    }
    let key_text = read(key)?;
    // PKCS#8, PKCS#1 (RSA) and SEC1 (EC) blocks are all accepted; the first wins.
    // The parse error is only about PEM framing, never the key bytes.
    let key_der = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| {
        ConfigError(format!(
            "tls-key {}: no usable private key ({e})",
            key.display()
        ))
    })?;
    let not_after = not_after(chain[0].as_ref());
    let certified = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => "the key does not match the certificate".into(),
            other => other.to_string(),
        };
        ConfigError(format!(
            "tls-key {} (for {}): {why}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(Pair {
        files: (cert.to_path_buf(), key.to_path_buf()),
        key: Arc::new(certified),
        not_after,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A warning when the certificate has expired or expires within
/// [`EXPIRY_WARN_DAYS`].
fn expiry_warning(cert: &Path, not_after: Option<u64>, now: u64) -> Option<String> {
    let end = not_after?;
    if end <= now {
        return Some(format!(
            "tls-cert {}: the certificate has expired",
            cert.display()
        ));
    }
    let days = (end - now) / 86_400;
    (days < EXPIRY_WARN_DAYS).then(|| {
        format!(
            "tls-cert {}: the certificate expires in {days} days",
            cert.display()
        )
    })
}

/// A warning when others than the owner and group may read the key file.
fn key_mode_warning(key: &Path) -> Option<String> {
    let mode = std::fs::metadata(key).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "tls-key {}: the private key file is readable by others (mode {:o}); chmod o-r it",
            key.display(),
            mode & 0o777
        )
    })
}

/// The leaf certificate's notAfter as seconds since the epoch, read from its DER:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
/// serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ...`.
pub fn not_after(der: &[u8]) -> Option<u64> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serialNumber, signature, issuer
    }
    let (_, validity, _) = tlv(rest)?;
    let (_, _, r) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(r)?;
    asn1_time(tag, time)
}

/// One DER element: `(tag, contents, rest)`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, 0x18).
fn asn1_time(tag: u8, t: &[u8]) -> Option<u64> {
    let digits = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + u64::from(c - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if t.len() >= 12 => {
            let yy = digits(&t[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
        }
        0x18 if t.len() >= 14 => (digits(&t[..4])?, &t[4..]),
        _ => return None,
    };
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (h, m, s) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), March-based years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times() {
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(0x17, b"000301000000Z"), Some(951_868_800));
        assert_eq!(asn1_time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(asn1_time(0x17, b"49123123595"), None);
        assert_eq!(asn1_time(0x17, b"7013010000Z0"), None);
        assert_eq!(asn1_time(0x05, b"700101000000Z"), None);
    }

    #[test]
    fn der_walk_refuses_short_input() {
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x30, 0x81]), None);
        assert_eq!(
            tlv(&[0x30, 0x02, 1, 2, 3]),
            Some((0x30, &[1u8, 2][..], &[3u8][..]))
        );
        assert_eq!(not_after(&[0x30, 0x00]), None);
        assert_eq!(not_after(b""), None);
    }

    #[test]
    fn expiry() {
        let p = Path::new("c.pem");
        assert!(expiry_warning(p, Some(100), 200)
            .unwrap()
            .contains("expired"));
        assert!(expiry_warning(p, Some(200 + 86_400 * 3), 200)
            .unwrap()
            .contains("3 days"));
        assert_eq!(expiry_warning(p, Some(200 + 86_400 * 30), 200), None);
        assert_eq!(expiry_warning(p, None, 200), None);
    }
}
