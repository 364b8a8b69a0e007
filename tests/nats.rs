//! End-to-end tests of workers over NATS.
