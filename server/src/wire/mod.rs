//! The wire format: Kafka's size-prefixed frames, and request/response coding over the
//! kafka-protocol crate. A leaf module: it knows nothing of handlers or shards.
//!
//! Errors here mean "close this connection"; Kafka error codes are data in responses.

pub mod codec;
pub mod frame;
pub mod pieces;
pub mod records;
pub mod replica_fetch;

pub use codec::{
    decode_request, encode_response, encode_response_pieces, DecodeError, Decoded, Request,
};
pub use frame::{split_frame, FrameError};
