//! Who is speaking on a run's socket. Every agent gets a token of its own in its
//! environment (`AGENT_RELAY_TOKEN`); the run's owner (the user, and the deterministic
//! steps they wrote) has the owner token, kept in the run directory (`relay.token`,
//! readable by the user only). An agent may send only as itself and read only its own
//! inbox; the owner may speak for anyone. A request without a valid token is refused.
//!
//! The limit: agents run as the same user as the coordinator, so one that reads another
//! process's environment or the run directory can still borrow a token; confining agents
//! with permissions closes that.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// The environment variable that carries a token.
pub const TOKEN_ENV: &str = "AGENT_RELAY_TOKEN";

/// The owner token's file in the run directory.
pub const TOKEN_FILE: &str = "relay.token";

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The run's owner: may speak for anyone.
    Owner,
    /// One agent: may speak only as itself.
    Agent(String),
}

impl Caller {
    /// Whether this caller may act as `name` (send as it, read its inbox).
    pub fn may_act_as(&self, name: &str) -> bool {
        match self {
            Caller::Owner => true,
            Caller::Agent(a) => a == name,
        }
    }
}

/// The tokens of one run.
#[derive(Debug, Clone)]
pub struct Access {
    owner: String,
    tokens: Arc<RwLock<HashMap<String, Caller>>>,
}

/// A new random token: 128 bits from the kernel, as hex.
fn fresh() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Access {
    /// The access of a new run: a fresh owner token, written to `run_dir/relay.token`
    /// (readable by the user only).
    pub fn create(run_dir: &Path) -> std::io::Result<Access> {
        let owner = fresh()?;
        write_private(&run_dir.join(TOKEN_FILE), owner.as_bytes())?;
        let mut tokens = HashMap::new();
        tokens.insert(owner.clone(), Caller::Owner);
        Ok(Access {
            owner,
            tokens: Arc::new(RwLock::new(tokens)),
        })
    }

    /// The owner token.
    pub fn owner_token(&self) -> &str {
        &self.owner
    }

    /// A token for `agent` (the same one each time it is asked for).
    pub fn agent_token(&self, agent: &str) -> std::io::Result<String> {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((t, _)) = tokens
            .iter()
            .find(|(_, c)| matches!(c, Caller::Agent(a) if a == agent))
        {
            return Ok(t.clone());
        }
        let t = fresh()?;
        tokens.insert(t.clone(), Caller::Agent(agent.to_owned()));
        Ok(t)
    }

    /// Who `token` speaks for, if anyone.
    pub fn caller(&self, token: Option<&str>) -> Option<Caller> {
        let token = token?;
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

/// `bytes` in the file at `path` (replaced if there), readable and writable by this user
/// only, whatever the umask.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The token a client should present: `AGENT_RELAY_TOKEN`, else the owner token kept in
/// the run directory `run_dir` (when known).
pub fn client_token(run_dir: Option<&Path>) -> Option<String> {
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.is_empty()
    {
        return Some(t);
    }
    let path: PathBuf = run_dir?.join(TOKEN_FILE);
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_say_who_speaks() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::create(dir.path()).unwrap();
        let owner = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        assert_eq!(access.caller(Some(&owner)), Some(Caller::Owner));
        let a = access.agent_token("alice").unwrap();
        assert_eq!(
            access.agent_token("alice").unwrap(),
            a,
            "one token per agent"
        );
        assert_ne!(access.agent_token("bob").unwrap(), a);
        let alice = access.caller(Some(&a)).unwrap();
        assert!(alice.may_act_as("alice") && !alice.may_act_as("bob"));
        assert_eq!(access.caller(Some("guess")), None);
        assert_eq!(access.caller(None), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
