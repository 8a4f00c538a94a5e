//! `IoEngine` reads, writes and injected faults over both I/O paths.

mod common;

use std::fs::OpenOptions;
use std::sync::Arc;

use bytes::Bytes;
use common::{engines, run, TempDir};

fn temp_file(dir: &TempDir) -> Arc<std::fs::File> {
    std::fs::create_dir_all(&dir.0).expect("dir");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.0.join("f"))
        .expect("file");
    Arc::new(f)
}

#[test]
fn read_at_returns_what_the_file_holds() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("io-read");
            let file = temp_file(&dir);
            let io = engine();
            let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            io.write_at(file.clone(), 0, Bytes::from(data.clone()))
                .await
                .expect("write");
            let got = io.read_at(file.clone(), 10, 1000).await.expect("read");
            assert_eq!(&got[..], &data[10..1010], "{name}");
            let tail = io.read_at(file.clone(), 99_990, 1000).await.expect("eof");
            assert_eq!(&tail[..], &data[99_990..], "{name}: short at end of file");
            let past = io.read_at(file.clone(), 200_000, 10).await.expect("past");
            assert!(past.is_empty());
            let whole = io.read_at(file.clone(), 0, data.len()).await.expect("all");
            assert_eq!(&whole[..], &data[..]);
            assert_eq!(io.faults().reads(), 4);
            assert_eq!(io.faults().writes(), 1);
        });
    }
}

#[test]
fn faults_fail_tear_and_clear() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("io-faults");
            let file = temp_file(&dir);
            let io = engine();
            let faults = io.faults();
            faults.fail_read(1, libc::EIO);
            let e = io
                .read_at(file.clone(), 0, 1)
                .await
                .expect_err("read fault");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}");
            faults.fail_write(2, libc::ENOSPC);
            io.write_at(file.clone(), 0, Bytes::from_static(b"abc"))
                .await
                .expect("first write");
            let e = io
                .write_at(file.clone(), 3, Bytes::from_static(b"def"))
                .await
                .expect_err("second write");
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
            assert_eq!(std::fs::read(dir.0.join("f")).expect("read"), b"abc");
            faults.tear_write(1, 2);
            let e = io
                .write_at(file.clone(), 3, Bytes::from_static(b"ghi"))
                .await
                .expect_err("torn");
            assert_eq!(e.raw_os_error(), Some(libc::EIO));
            assert_eq!(std::fs::read(dir.0.join("f")).expect("read"), b"abcgh");
            faults.fail_syncs_from(1, libc::EIO);
            assert!(io.sync(file.clone(), false).await.is_err());
            assert!(io
                .write_at_and_sync(file.clone(), 0, Bytes::from_static(b"x"))
                .await
                .is_err());
            faults.clear();
            io.sync(file.clone(), false).await.expect("healed");
            assert_eq!((faults.writes(), faults.syncs(), faults.reads()), (4, 3, 1));
            assert_eq!(io.sync_count(), 3);
        });
    }
}

/// More ops in flight than the smallest ring's completion queue holds (8 entries, 16
/// completions), completing together: the ones the kernel keeps in its overflow list
/// still complete (the driver flushes it), instead of waiting forever.
#[test]
fn a_burst_larger_than_the_completion_queue_completes() {
    run(|| async move {
        let dir = TempDir::new("io-burst");
        let file = temp_file(&dir);
        let io = fjord_storage::IoEngine::new(8).expect("engine");
        // Each op is pushed when first polled: spawned, they are all polled in one
        // reactor turn and complete together.
        let ops: Vec<_> = (0..400u64)
            .map(|i| {
                let write = io.write_at(file.clone(), i * 16, Bytes::from(vec![i as u8; 16]));
                tokio::task::spawn_local(write)
            })
            .collect();
        let all = async {
            for op in ops {
                op.await.expect("task").expect("write");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("every write completes");
        let got = io.read_at(file.clone(), 399 * 16, 16).await.expect("read");
        assert_eq!(&got[..], &[143u8; 16][..]);
    });
}
