//! Metadata: commands, the pure state machine over [`ClusterImage`], and the
//! control-plane thread that orders, persists and publishes them.
//!
//! Threads: the control plane runs on its own thread with a small tokio runtime and
//! is the only writer of the metadata log. Shards propose commands through a
//! [`MetadataHandle`] (mpsc + oneshot reply) and receive every new image through a
//! `watch` channel.

pub mod command;
pub mod image;
pub mod store;
pub mod topics;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use command::{Command, CommandError, ConfigResource};
pub use image::{Applied, BrokerInfo, ClusterImage, PartitionImage, TopicImage};

type Reply = oneshot::Sender<Result<(Applied, Arc<ClusterImage>), CommandError>>;

/// A cheap, `Send` handle to the control plane. Cloned into every shard.
#[derive(Clone)]
pub struct MetadataHandle {
    tx: mpsc::UnboundedSender<(Command, Reply)>,
    image: watch::Receiver<Arc<ClusterImage>>,
}

impl MetadataHandle {
    /// Proposes a command; resolves once it is durable and applied, with the image
    /// that includes it.
    pub async fn propose(
        &self,
        cmd: Command,
    ) -> Result<(Applied, Arc<ClusterImage>), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .map_err(|_| CommandError::Storage("control plane stopped".into()))?;
        rx.await
            .map_err(|_| CommandError::Storage("control plane stopped".into()))?
    }

    /// A receiver of every published image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image.clone()
    }

    /// The latest published image.
    pub fn current(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }
}

/// Opens the metadata log under `dir`, replays it, and starts the control-plane thread.
pub fn start(dir: &Path) -> std::io::Result<MetadataHandle> {
    let (mut log, commands) = store::MetadataLog::open(dir)?;
    let mut image = ClusterImage::default();
    for (i, cmd) in commands.iter().enumerate() {
        // Commands in the log were valid when appended; a refusal on replay would mean
        // a non-deterministic apply, so it is reported loudly.
        if let Err(e) = image.apply(i as u64 + 1, cmd) {
            tracing::error!(index = i + 1, error = %e, "metadata replay refused a logged command");
        }
    }
    tracing::info!(
        commands = commands.len(),
        topics = image.topics.len(),
        "metadata log replayed"
    );
    let (image_tx, image_rx) = watch::channel(Arc::new(image));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Command, Reply)>();
    std::thread::Builder::new()
        .name("fjord-control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "control plane: cannot build runtime");
                    return;
                }
            };
            rt.block_on(async move {
                while let Some((cmd, reply)) = rx.recv().await {
                    let mut next = ClusterImage::clone(&image_tx.borrow());
                    let index = next.applied_index + 1;
                    let result = match next.apply(index, &cmd) {
                        Ok(applied) => match log.append(&cmd) {
                            Ok(()) => {
                                let next = Arc::new(next);
                                image_tx.send_replace(next.clone());
                                Ok((applied, next))
                            }
                            Err(e) => Err(CommandError::Storage(e.to_string())),
                        },
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
            });
        })?;
    Ok(MetadataHandle {
        tx,
        image: image_rx,
    })
}
