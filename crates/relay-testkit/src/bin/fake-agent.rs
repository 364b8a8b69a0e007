//! A stand-in for the coding-agent CLIs; see the relay-testkit README for its protocol.

fn main() {
    relay_testkit::run_fake_agent()
}
