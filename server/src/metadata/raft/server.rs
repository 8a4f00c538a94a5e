//! The controller listener: accepts connections from other controller nodes and
//! answers their requests (Raft RPCs, forwarded proposals, broker heartbeats,
//! DescribeQuorum).
//!
//! Never the client port: Kafka clients cannot reach it by accident. Each connection
//! is served by its own task on the control-plane thread, one request at a time.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::controller::Controller;
use super::network::{read_frame, write_frame, Reply, Request};

/// Accepts controller connections forever.
pub async fn serve(listener: TcpListener, controller: Arc<Controller>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let c = controller.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, c).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, c: Arc<Controller>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    while let Some(req) = read_frame::<Request>(&mut stream).await? {
        let reply = match req {
            Request::AppendEntries(r) => Reply::AppendEntries(c.raft.append_entries(r).await),
            Request::Vote(r) => Reply::Vote(c.raft.vote(r).await),
            Request::InstallSnapshot(r) => Reply::InstallSnapshot(c.raft.install_snapshot(r).await),
            Request::Propose(cmd) => Reply::Propose(c.write_local(cmd).await),
            Request::Heartbeat(b) => Reply::Heartbeat(c.on_heartbeat(b).await),
            Request::DescribeQuorum => Reply::DescribeQuorum(c.quorum_status().await),
        };
        write_frame(&mut stream, &reply).await?;
    }
    Ok(())
}
