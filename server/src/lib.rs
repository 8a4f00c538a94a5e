//! Fjord: a broker that speaks Apache Kafka's binary protocol.
//!
//! Layout (request path: `net` → `wire` → `api` → `partition` → storage):
//! - `config`     — Kafka-style properties: parsing, start-up validation, `Config`.
//! - `configs/`   — the topic/broker config model and the one catalogue of broker keys:
//!   names, types, defaults, docs, precedence.
//! - `shard/`     — one pinned runtime per core; the per-core context (routing:
//!   `owner`, `invoke_on`, `scatter`) and its services side by side.
//! - `net/`       — SO_REUSEPORT listeners; the connection loop (pipelined, in-order).
//! - `wire/`      — frames (incomplete vs invalid), kafka-protocol coding, the record
//!   codec.
//! - `api/`       — one file per Kafka API; `api/mod.rs` holds the API table.
//! - `partition/` — a partition's log, high watermark and idempotent-producer state;
//!   record validation; the per-core partition registry.
//! - `group/`     — consumer groups: pure state machines and the per-core coordinator.
//! - `replica/`   — the per-core replica manager: ISR proposals, what followers fetch
//!   and how they apply it.
//! - `placement/` — the consistent-hash ring and partition→shard ownership.
//! - `metadata/`  — commands, the pure `ClusterImage` state machine, the metadata log
//!   and the control-plane thread; a shard's `ClusterView`; producer-id blocks.
//! - `quota`      — client quota sensors: sampled rates and throttle times.
//! - `telemetry`  — the Prometheus endpoint.

pub mod api;
pub mod config;
pub mod configs;
pub mod group;
pub mod metadata;
pub mod net;
pub mod partition;
pub mod placement;
pub mod quota;
pub mod replica;
pub mod shard;
pub mod telemetry;
pub mod wire;
