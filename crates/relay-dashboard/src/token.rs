//! The dashboard's access token: random per server, required on every request (as the
//! `t` query parameter, which pages and the live stream carry, or as a bearer header).
//! Anyone on the machine can reach a loopback port; only who was shown the URL has this.

use std::io::Read;

/// A server's access token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh token: 128 bits from the kernel, as hex.
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token with a known value (tests, and a fixed token from the environment).
    pub fn from_value(value: &str) -> Option<Token> {
        (value.len() >= 16 && value.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Token(value.to_owned()))
    }

    /// The value, for URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request presenting `query` (the raw query string) and `authorization`
    /// (the header's value) carries this token. The comparison takes the same time
    /// wherever the first difference is.
    pub fn admits(&self, query: Option<&str>, authorization: Option<&str>) -> bool {
        let from_header = authorization.and_then(|h| h.strip_prefix("Bearer "));
        let from_query = query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("t=")));
        [from_header, from_query]
            .into_iter()
            .flatten()
            .any(|given| same(given.as_bytes(), self.0.as_bytes()))
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_128_bits() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_request_is_admitted_only_with_the_exact_token() {
        let t = Token::from_value("0123456789abcdef0123").unwrap();
        assert!(t.admits(Some("t=0123456789abcdef0123"), None));
        assert!(t.admits(Some("x=1&t=0123456789abcdef0123"), None));
        assert!(t.admits(None, Some("Bearer 0123456789abcdef0123")));
        assert!(!t.admits(None, None));
        assert!(!t.admits(Some("t="), None));
        assert!(!t.admits(Some("t=0123456789abcdef012"), None));
        assert!(!t.admits(Some("t=0123456789abcdef01234"), None));
        assert!(!t.admits(Some("tt=0123456789abcdef0123"), None));
        assert!(!t.admits(None, Some("0123456789abcdef0123")));
        assert!(!t.admits(Some("t=X123456789abcdef0123"), None));
    }

    #[test]
    fn short_or_odd_fixed_tokens_are_refused() {
        assert!(Token::from_value("short").is_none());
        assert!(Token::from_value("0123456789abcdef&t=x").is_none());
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = Token::from_value("0123456789abcdef0123").unwrap();
        assert!(!format!("{t:?}").contains("0123"));
    }
}
