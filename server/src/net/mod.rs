//! Networking: SO_REUSEPORT listeners (one per shard on the same port) and the
//! per-connection loop that reads frames, runs requests concurrently and writes
//! responses back in request order; the follower fetchers' connections to leaders.

pub mod connection;
pub mod listener;
pub mod replica_fetcher;
