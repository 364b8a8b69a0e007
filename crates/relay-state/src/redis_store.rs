//! The `redis` backend: a real Redis server, through the `redis` crate's reconnecting
//! connection manager on tokio. Agents never talk to Redis: they ask the run's broker,
//! which holds the one connection (so they need no credentials).
//!
//! Layout: each entry is a hash `relay:NAMESPACE:KEY` with fields `value`, `by`, `ts`,
//! `rev` and `exp`, expiring by Redis's own TTL; `relay-rev:NAMESPACE` counts the
//! revisions of the namespace. Writes and deletes are Lua scripts, so the comparison of
//! a compare-and-set and its write are one atomic step on the server.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::backend::{Expect, Put, StateBackend, Write};
use crate::{Entry, StateError, now_ms};

/// Bound on one request to the server (and on connecting).
const TIMEOUT: Duration = Duration::from_secs(10);

/// How often a watcher re-reads, for writes of other coordinators sharing the server.
const POLL: Duration = Duration::from_millis(250);

/// KEYS: entry, revision counter. ARGV: mode (`any`, `absent`, `value`), expected,
/// value, by, ts (now, in ms since the epoch), ttl in ms (empty: none), expiry in ms since
/// the epoch (empty: none). Returns `{1, rev}` when written, `{0}` or `{0, value, by, ts, rev, exp}` when not.
const PUT: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'value', 'by', 'ts', 'rev', 'exp')
local present = cur[1] ~= false
-- Past its expiry by the writer's clock (ARGV[5]) it is gone, as a read takes it, even
-- in the moment before Redis drops it.
if present and cur[5] and cur[5] ~= '' and tonumber(cur[5]) <= tonumber(ARGV[5]) then
  present = false
end
local mode = ARGV[1]
if (mode == 'absent' and present) or (mode == 'value' and (not present or cur[1] ~= ARGV[2])) then
  if present then
    return {0, cur[1], cur[2] or '', cur[3] or '0', cur[4] or '0', cur[5] or ''}
  end
  return {0}
end
local rev = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'by', ARGV[4], 'ts', ARGV[5], 'rev', rev, 'exp', ARGV[7])
if ARGV[6] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return {1, rev}
";

/// KEYS: entry, revision counter. Returns 1 when the key was set.
const DELETE: &str = r"
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
";

/// State on a Redis server.
pub struct RedisStore {
    conn: ConnectionManager,
    url: String,
    put: Script,
    delete: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> StateError {
    StateError::Backend {
        backend: "redis",
        message: e.to_string(),
    }
}

/// `url` without a password, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The revision counter of the namespace a full key (`NAMESPACE:KEY`) is in.
fn rev_key(full: &str) -> String {
    let ns = full.split(':').next().unwrap_or(full);
    format!("relay-rev:{ns}")
}

/// `text` with Redis's glob characters escaped, for a `SCAN MATCH` prefix.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StateError> {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| err(format!("{what}: {e}"))),
        Err(_) => Err(err(format!(
            "{what}: no answer within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

fn entry_of(fields: &[String]) -> Option<Entry> {
    let [value, by, ts, rev, exp] = fields else {
        return None;
    };
    Some(Entry {
        value: value.clone(),
        by: by.clone(),
        ts_ms: ts.parse().unwrap_or(0),
        rev: rev.parse().unwrap_or(0),
        expires_ms: exp.parse().ok(),
    })
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://HOST:PORT/DB`).
    pub async fn connect(url: &str) -> Result<RedisStore, StateError> {
        let client = redis::Client::open(url).map_err(|e| err(format!("{}: {e}", shown(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2);
        let conn = bounded(
            &format!("cannot connect to {}", shown(url)),
            client.get_connection_manager_with_config(config),
        )
        .await?;
        let mut probe = conn.clone();
        bounded(
            &format!("{} does not answer", shown(url)),
            redis::cmd("PING").query_async::<String>(&mut probe),
        )
        .await?;
        Ok(RedisStore {
            conn,
            url: shown(url),
            put: Script::new(PUT),
            delete: Script::new(DELETE),
        })
    }

    async fn hash(&self, key: &str) -> Result<Option<Entry>, StateError> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<String>> = bounded(
            "read",
            redis::cmd("HMGET")
                .arg(format!("relay:{key}"))
                .arg(&["value", "by", "ts", "rev", "exp"])
                .query_async(&mut conn),
        )
        .await?;
        if fields.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        let fields: Vec<String> = fields.into_iter().map(Option::unwrap_or_default).collect();
        let entry = entry_of(&fields);
        // Redis expires on its own; the clock check covers the moment in between.
        Ok(entry.filter(|e| !e.expired(now_ms())))
    }
}

impl StateBackend for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StateError> {
        self.hash(key).await
    }

    async fn put(&self, key: &str, write: &Write<'_>, expect: &Expect) -> Result<Put, StateError> {
        let now = now_ms();
        let ttl_ms = write.ttl.map(|t| (t.as_millis() as u64).max(1));
        let (mode, expected) = match expect {
            Expect::Any => ("any", ""),
            Expect::Absent => ("absent", ""),
            Expect::Value(v) => ("value", v.as_str()),
        };
        let mut conn = self.conn.clone();
        let mut inv = self.put.prepare_invoke();
        inv.key(format!("relay:{key}"))
            .key(rev_key(key))
            .arg(mode)
            .arg(expected)
            .arg(write.value)
            .arg(write.by)
            .arg(now.to_string())
            .arg(ttl_ms.map(|t| t.to_string()).unwrap_or_default())
            .arg(ttl_ms.map(|t| (now + t).to_string()).unwrap_or_default());
        let reply: Vec<redis::Value> = bounded("write", inv.invoke_async(&mut conn)).await?;
        let strings: Vec<String> = reply
            .iter()
            .map(|v| redis::from_redis_value_ref::<String>(v).unwrap_or_default())
            .collect();
        match strings.split_first() {
            Some((flag, rest)) if flag == "1" => {
                let rev = rest.first().and_then(|r| r.parse().ok()).unwrap_or(0);
                Ok(Put::Written(Entry {
                    value: write.value.to_owned(),
                    by: write.by.to_owned(),
                    ts_ms: now,
                    rev,
                    expires_ms: ttl_ms.map(|t| now + t),
                }))
            }
            Some((flag, rest)) if flag == "0" => Ok(Put::Mismatch(entry_of(rest))),
            _ => Err(err(format!("unexpected answer to a write: {reply:?}"))),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let mut inv = self.delete.prepare_invoke();
        inv.key(format!("relay:{key}")).key(rev_key(key));
        let n: i64 = bounded("delete", inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, StateError> {
        let pattern = format!("relay:{}*", glob_escape(prefix));
        let mut keys = std::collections::BTreeSet::new();
        let mut cursor: u64 = 0;
        let mut conn = self.conn.clone();
        loop {
            let (next, batch): (u64, Vec<String>) = bounded(
                "list",
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn),
            )
            .await?;
            // SCAN may return a key twice; the set keeps one.
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
        let mut out = Vec::new();
        for k in keys {
            if out.len() >= limit {
                break;
            }
            let Some(full) = k.strip_prefix("relay:") else {
                continue;
            };
            if let Some(e) = self.hash(full).await? {
                out.push((full.to_owned(), e));
            }
        }
        Ok(out)
    }

    fn poll(&self) -> Option<Duration> {
        Some(POLL)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages_and_prefixes_are_escaped() {
        assert_eq!(shown("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(shown("redis://h:1"), "redis://h:1");
        assert_eq!(glob_escape("a*b?[c]"), r"a\*b\?\[c\]");
        assert_eq!(rev_key("ns:a:b"), "relay-rev:ns");
    }
}
