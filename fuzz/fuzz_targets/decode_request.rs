//! Request decoding must never panic or allocate without bound, whatever the bytes:
//! frame splitting then header and body decoding, as the connection loop does.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    // Frames as the connection reads them (socket.request.max.bytes = 1 MiB here).
    while let Ok(Some(frame)) = fjord::wire::split_frame(&mut buf, 1 << 20) {
        let _ = fjord::wire::decode_request(frame.freeze(), fjord::api::accepted_versions);
    }
    // And the whole input as one frame body.
    let _ = fjord::wire::decode_request(bytes::Bytes::copy_from_slice(data), fjord::api::accepted_versions);
});
