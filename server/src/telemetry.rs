//! The Prometheus text endpoint (`fjord.metrics.listener`, off by default): requests
//! and errors by API, bytes in and out, request latency histograms, log end offsets.
//! Served by a small thread of its own so scrapes never touch a shard.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Installs the global recorder and serves `GET /metrics` on `addr`.
pub fn start(addr: &str) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tracing::info!(%addr, "metrics endpoint listening");
    std::thread::Builder::new()
        .name("fjord-metrics".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "metrics runtime"),
            };
            rt.block_on(serve(listener, handle));
        })?;
    Ok(())
}

async fn serve(listener: std::net::TcpListener, handle: PrometheusHandle) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            // Read (and ignore) the request head; every path answers with the metrics.
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
                .await;
            let body = handle.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}
