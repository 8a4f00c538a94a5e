//! ApiVersions (key 18), versions 0–4: generated from the table in `api/mod.rs`.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::APIS;
use crate::wire;

fn api_keys() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.advertised_min)
                .with_max_version(a.max)
        })
        .collect()
}

pub fn handle(_version: i16, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
}

/// The answer to an ApiVersions request at a version above ours: v0 with
/// UNSUPPORTED_VERSION and our ranges, so the client retries with one we speak.
pub fn unsupported_version_response(correlation_id: i32) -> super::Reply {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    super::encoded(
        wire::encode_response(
            correlation_id,
            ApiKey::ApiVersions,
            0,
            &ResponseKind::ApiVersions(body),
        )
        .map(|b| vec![b.freeze()]),
        "ApiVersions",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_the_table_and_produce_from_zero() {
        let r = handle(3, ApiVersionsRequest::default());
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .expect("produce");
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        assert_eq!(r.api_keys.len(), APIS.len());
        let super::super::Reply::Send(pieces) = unsupported_version_response(7) else {
            panic!("an ApiVersions answer always encodes");
        };
        let bytes = &pieces[0];
        // size, correlation id, then error code 35.
        assert_eq!(&bytes[4..8], &7i32.to_be_bytes());
        assert_eq!(&bytes[8..10], &35i16.to_be_bytes());
    }
}
