//! Records inside v2 batches, through kafka-protocol's record codec (every
//! compression codec, Kafka's record layout): the one place below `api/` that decodes
//! or encodes records. The storage, partition and group layers use it through the
//! `fjord_storage::RecordCodec` trait, so they never see kafka-protocol types.

use bytes::{Bytes, BytesMut};
use fjord_storage::{RecordCodec, RecordInfo};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Kafka's record format, for every codec kafka-protocol knows.
pub struct KafkaRecords;

fn decode(batch: &[u8]) -> Result<kafka_protocol::records::RecordSet, String> {
    let mut buf = Bytes::copy_from_slice(batch);
    RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())
}

fn encode(records: &[Record], compression: Compression) -> Result<Vec<u8>, String> {
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, records, &options).map_err(|e| e.to_string())?;
    Ok(out.to_vec())
}

impl RecordCodec for KafkaRecords {
    fn records(&self, batch: &[u8]) -> Result<Vec<RecordInfo>, String> {
        Ok(decode(batch)?
            .records
            .into_iter()
            .map(|r| RecordInfo {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
            })
            .collect())
    }

    fn retain(&self, batch: &[u8], keep: &dyn Fn(i64) -> bool) -> Result<Option<Vec<u8>>, String> {
        let set = decode(batch)?;
        let kept: Vec<_> = set.records.into_iter().filter(|r| keep(r.offset)).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        encode(&kept, set.compression).map(Some)
    }

    fn recompress(&self, batch: &[u8], codec: u8) -> Result<Vec<u8>, String> {
        let compression = match codec {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(format!("unknown compression codec {other}")),
        };
        encode(&decode(batch)?.records, compression)
    }

    fn encode(
        &self,
        records: &[(Bytes, Option<Bytes>)],
        timestamp_ms: i64,
    ) -> Result<Vec<u8>, String> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch when offset - sequence changes.
                sequence: i as i32 - 1,
                timestamp: timestamp_ms,
                key: Some(key.clone()),
                value: value.clone(),
                headers: Default::default(),
            })
            .collect();
        encode(&records, Compression::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_one_batch_and_reads_it_back() {
        let c = KafkaRecords;
        let records = vec![
            (Bytes::from_static(b"k1"), Some(Bytes::from_static(b"v1"))),
            (Bytes::from_static(b"k2"), None),
        ];
        let batch = c.encode(&records, 1_700_000_000_000).expect("encode");
        let ranges = fjord_storage::batch::split_batches(&batch).expect("batches");
        assert_eq!(ranges.len(), 1, "one batch");
        let read = c.records(&batch).expect("decode");
        assert_eq!(read.len(), 2);
        assert_eq!(
            (read[0].offset, read[0].key.as_deref()),
            (0, Some(&b"k1"[..]))
        );
        assert!(read[1].is_tombstone() && read[1].offset == 1);
        let zstd = c.recompress(&batch, 4).expect("zstd");
        let h = fjord_storage::BatchHeader::parse(&zstd).expect("header");
        assert_eq!(h.compression(), 4);
        assert_eq!(c.records(&zstd).expect("decode"), read);
        let kept = c
            .retain(&batch, &|o| o == 1)
            .expect("retain")
            .expect("one kept");
        assert_eq!(c.records(&kept).expect("decode"), read[1..].to_vec());
    }
}
