//! Reaching the NATS server: the URL (credentials taken out of it so they are never
//! printed or logged), a creds file, TLS, and the errors of this crate.
//!
//! Accepted: `nats://host:port`, `tls://host:port` (TLS required), `host:port`, with
//! `user:password@` or `token@` before the host. Files come from the environment:
//! `AGENT_RELAY_NATS_CREDS` (a `.creds` file: JWT and nkey seed, for servers run with an
//! operator), `AGENT_RELAY_NATS_NKEY` (a file holding a user's nkey seed, `SU...`, for
//! servers that list users by nkey), `AGENT_RELAY_NATS_CA` (root certificate to trust),
//! `AGENT_RELAY_NATS_CERT` and `AGENT_RELAY_NATS_KEY` (a client certificate). Neither the
//! files' contents nor the URL's credentials appear in any message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why something NATS-related failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The URL cannot be used.
    #[error("bad NATS URL `{url}`: {why}")]
    BadUrl {
        /// The URL, credentials hidden.
        url: String,
        /// Why.
        why: String,
    },
    /// Bad input (a label, a placement, a name).
    #[error("{0}")]
    Invalid(String),
    /// The server cannot be reached or refused us.
    #[error("cannot reach the NATS server at {url}: {why}")]
    Unreachable {
        /// The URL, credentials hidden.
        url: String,
        /// Why.
        why: String,
    },
    /// JetStream refused or failed an operation.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    /// A local file or socket failed.
    #[error("{0}")]
    Io(String),
    /// Another worker already runs under this name.
    #[error("a worker named `{0}` is already running (give this one another --name)")]
    NameTaken(String),
}

/// The environment variable naming a file with the nkey seed to authenticate with.
pub const NKEY_ENV: &str = "AGENT_RELAY_NATS_NKEY";

/// A NATS server address with its credentials kept apart.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl {
    /// `nats://host:port` or `tls://host:port`, no credentials.
    address: String,
    auth: Auth,
}

#[derive(Clone, PartialEq, Eq)]
enum Auth {
    None,
    Token(String),
    User(String, String),
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsUrl({self})")
    }
}

impl fmt::Display for NatsUrl {
    /// The address, with `***@` where credentials were: safe to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.auth, self.address.split_once("://")) {
            (Auth::None, _) => f.write_str(&self.address),
            (_, Some((scheme, rest))) => write!(f, "{scheme}://***@{rest}"),
            (_, None) => write!(f, "***@{}", self.address),
        }
    }
}

/// Hides what lies between `://` and `@` in `text` (for errors about a URL we could not
/// even parse).
fn redact(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let rest = match rest.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => rest.to_owned(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Decodes `%XX` escapes (credentials may hold `@` or `:` written that way).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host[:port]` (an IPv6 address in brackets) as `host:port`, the port 4222 unless given.
fn host_and_port(host: &str, had_credentials: bool) -> Result<String, String> {
    if host.contains(',') {
        return Err("it names several servers (`,`): give one".into());
    }
    if let Some((_, path)) = host.split_once('/') {
        return Err(format!("a NATS URL has no path (`/{path}`)"));
    }
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(if had_credentials {
            "no host:port after the credentials".into()
        } else {
            "no host:port".into()
        });
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let Some((addr, after)) = v6.split_once(']') else {
                return Err("an IPv6 address needs its closing `]`".into());
            };
            let port = match after {
                "" => None,
                a => Some(
                    a.strip_prefix(':')
                        .ok_or("after `]` comes `:port` or nothing")?,
                ),
            };
            (format!("[{addr}]"), port)
        }
        None => match host.rsplit_once(':') {
            Some((n, _)) if n.contains(':') => {
                return Err("an IPv6 address goes in brackets, as in `[::1]:4222`".into());
            }
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (host.to_owned(), None),
        },
    };
    if name.is_empty() || name == "[]" {
        return Err("no host before the port".into());
    }
    let port = match port {
        None => 4222,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the port `{p}` is not a number from 1 to 65535"))?,
    };
    Ok(format!("{name}:{port}"))
}

impl NatsUrl {
    /// Reads `text`; the error never shows the credentials.
    pub fn parse(text: &str) -> Result<NatsUrl, NatsError> {
        let text = text.trim();
        let bad = |why: &str| NatsError::BadUrl {
            url: redact(text),
            why: why.to_owned(),
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("nats".to_owned(), text),
        };
        if !matches!(scheme.as_str(), "nats" | "tls") {
            return Err(bad("the scheme must be nats:// or tls://"));
        }
        let rest = rest.trim_end_matches('/');
        let (auth, host) = match rest.rsplit_once('@') {
            None => (Auth::None, rest),
            Some((cred, host)) => match cred.split_once(':') {
                Some((u, p)) => (Auth::User(unescape(u), unescape(p)), host),
                None => (Auth::Token(unescape(cred)), host),
            },
        };
        let host = host_and_port(host, !matches!(auth, Auth::None)).map_err(|why| bad(&why))?;
        Ok(NatsUrl {
            address: format!("{scheme}://{host}"),
            auth,
        })
    }

    /// Connects as `name` (shown in the server's connection list). The client
    /// reconnects by itself for as long as it lives once the first connection is made.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, NatsError> {
        let unreachable = |why: String| NatsError::Unreachable {
            url: self.to_string(),
            why,
        };
        let mut opts = match std::env::var_os("AGENT_RELAY_NATS_CREDS") {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(PathBuf::from(path))
                .await
                .map_err(|e| unreachable(format!("cannot read the creds file: {e}")))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(path) = std::env::var_os(NKEY_ENV) {
            let seed = std::fs::read_to_string(&path).map_err(|e| {
                unreachable(format!(
                    "cannot read the nkey seed file {} ({NKEY_ENV}): {e}",
                    Path::new(&path).display()
                ))
            })?;
            let seed = seed.trim();
            if !seed.starts_with("SU") || seed.contains(char::is_whitespace) {
                return Err(unreachable(format!(
                    "the file {} ({NKEY_ENV}) does not hold a user's nkey seed (one line \
                     starting with SU)",
                    Path::new(&path).display()
                )));
            }
            opts = opts.nkey(seed.to_owned());
        }
        opts = match &self.auth {
            Auth::None => opts,
            Auth::Token(t) => opts.token(t.clone()),
            Auth::User(u, p) => opts.user_and_password(u.clone(), p.clone()),
        };
        if self.address.starts_with("tls://") {
            opts = opts.require_tls(true);
        }
        if let Some(ca) = std::env::var_os("AGENT_RELAY_NATS_CA") {
            opts = opts
                .add_root_certificates(PathBuf::from(ca))
                .require_tls(true);
        }
        if let (Some(cert), Some(key)) = (
            std::env::var_os("AGENT_RELAY_NATS_CERT"),
            std::env::var_os("AGENT_RELAY_NATS_KEY"),
        ) {
            opts = opts.add_client_certificate(PathBuf::from(cert), PathBuf::from(key));
        }
        let opts = opts
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(5)))
            // Reconnect at a steady pace while the server restarts.
            .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)));
        let address = self.address.replacen("tls://", "nats://", 1);
        opts.connect(address)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }
}

/// Returns once the server has processed everything `client` sent before the call, such
/// as its subscriptions: the server handles one connection's commands in order, so a
/// message the client sends itself and gets back went through after them. (`flush` only
/// says the bytes were written to the socket.)
pub async fn round_trip(client: &async_nats::Client) -> Result<(), String> {
    use futures_util::StreamExt;
    let probe = client.new_inbox();
    let mut back = client
        .subscribe(probe.clone())
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish(probe, Vec::<u8>::new().into())
        .await
        .map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(std::time::Duration::from_secs(30), back.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the connection closed".into()),
        Err(_) => Err("the server did not answer within 30 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let u = NatsUrl::parse("nats://alice:s3cret@10.0.0.5:4333").unwrap();
        assert_eq!(u.to_string(), "nats://***@10.0.0.5:4333");
        assert!(!format!("{u:?}").contains("s3cret"));
        let t = NatsUrl::parse("tls://tok3n@example:4222").unwrap();
        assert_eq!(t.to_string(), "tls://***@example:4222");
        let e = NatsUrl::parse("ftp://bob:pw@host").unwrap_err().to_string();
        assert!(!e.contains("pw"), "{e}");
        assert!(e.contains("***@host"), "{e}");
    }

    #[test]
    fn the_port_defaults_and_the_scheme_may_be_left_out() {
        assert_eq!(
            NatsUrl::parse("localhost").unwrap().to_string(),
            "nats://localhost:4222"
        );
        assert_eq!(
            NatsUrl::parse("127.0.0.1:5000").unwrap().to_string(),
            "nats://127.0.0.1:5000"
        );
        assert!(NatsUrl::parse("").is_err());
        assert!(NatsUrl::parse("nats://user:pw@").is_err());
    }

    #[test]
    fn bad_hosts_and_ports_are_named() {
        let why = |u: &str| NatsUrl::parse(u).unwrap_err().to_string();
        assert!(why("nats://127.0.0.1:99999").contains("the port `99999`"));
        assert!(why("nats://127.0.0.1:abc").contains("the port `abc`"));
        assert!(why("nats://127.0.0.1:-1").contains("the port `-1`"));
        assert!(why("nats://127.0.0.1:0").contains("the port `0`"));
        assert!(why("nats://:4222").contains("no host before the port"));
        assert!(why("nats://[::1").contains("closing `]`"));
        assert!(why("nats://::1").contains("brackets"));
        assert!(why("nats://a:1,nats://b:2").contains("several servers"));
        assert!(why("nats://a:1/path").contains("no path (`/path`)"));
        assert!(why("nats://").contains("no host:port"));
        assert!(!why("nats://").contains("credentials"));
        assert_eq!(
            NatsUrl::parse("nats://[::1]:5000").unwrap().to_string(),
            "nats://[::1]:5000"
        );
        assert_eq!(
            NatsUrl::parse("[::1]").unwrap().to_string(),
            "nats://[::1]:4222"
        );
        assert_eq!(
            NatsUrl::parse("nats://host/").unwrap().to_string(),
            "nats://host:4222"
        );
    }

    #[test]
    fn escaped_credentials_are_decoded() {
        let u = NatsUrl::parse("nats://a%40b:p%3Aw@h:1").unwrap();
        assert!(matches!(&u.auth, Auth::User(a, p) if a == "a@b" && p == "p:w"));
    }
}
