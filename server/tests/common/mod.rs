//! Test support: start the real `fjord` binary on a free port with a fresh data
//! directory, and a minimal Kafka protocol client over kafka-protocol.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Kills a test's broker process (SIGKILL) and reaps it.
fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Stops a test's broker process with SIGTERM and waits for it (clean shutdown);
/// panics if it has not exited within 20 s.
fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!("fjord did not stop on SIGTERM");
    }
}

/// Ready means serving: an ApiVersions request on a new connection is answered. (A
/// successful connect alone can reach a socket that is not the broker's, e.g. another
/// test thread's short-lived port probe that the kernel handed the same port.)
fn answers_api_versions(host: &str, port: u16) -> bool {
    let Some(mut c) = Client::try_connect_to(host, port) else {
        return false;
    };
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(5)));
    let req = kafka_protocol::messages::ApiVersionsRequest::default();
    c.try_request(0, &req).is_some_and(|r| r.error_code == 0)
}

/// A running broker process; killed on drop.
pub struct Broker {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
}

/// A port nobody listens on, never the same twice in this test process: tests run
/// in parallel, and the kernel may hand a just-released port out again, which would
/// put two brokers on one port (their listeners use SO_REUSEPORT).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        // Bound, never listening: no connection of another test can land on it.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any.into()).expect("bind");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Broker {
    pub fn start(name: &str, extra: &[&str]) -> Broker {
        let dir = std::env::temp_dir().join(format!("fjord-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        b.spawn();
        b
    }

    pub fn spawn(&mut self) {
        self.spawn_with_stderr(Stdio::inherit());
    }

    /// Like [`Broker::spawn`], with the broker's stderr (its log) appended to `path`.
    pub fn spawn_logging_to(&mut self, path: &std::path::Path) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open broker log file");
        self.spawn_with_stderr(Stdio::from(file));
    }

    fn spawn_with_stderr(&mut self, stderr: Stdio) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fjord"));
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port));
        cmd.arg("--override")
            .arg(format!("log.dirs={}", self.dir.display()));
        cmd.arg("--override").arg("fjord.cores=2");
        for e in &self.extra {
            cmd.arg("--override").arg(e);
        }
        cmd.stdout(Stdio::null()).stderr(stderr);
        self.child = Some(cmd.spawn().expect("spawn fjord"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers_api_versions("127.0.0.1", self.port) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("fjord exited while starting: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fjord did not start answering requests");
    }

    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGTERM and wait (clean shutdown).
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A broker that died on its own explains a failed test: say how it ended.
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            eprintln!("fjord on port {} had exited by itself: {status}", self.port);
        }
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking one-request-at-a-time client.
pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation: 0,
        }
    }

    /// A client of `port` on 127.0.0.1 whose own address is `from` (another loopback
    /// address, as a second host would be).
    pub fn connect_from(from: std::net::Ipv4Addr, port: u16) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let local = std::net::SocketAddr::from((from, 0));
        socket
            .bind(&local.into())
            .expect("bind the client's address");
        let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.connect(&server.into()).expect("connect");
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation: 0,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one response frame; None if the connection was closed.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.try_request(version, req).expect("response")
    }

    pub fn try_request<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("it")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .expect("header");
        req.encode(&mut buf, version).expect("body");
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).ok()?;
        let mut frame = self.read_frame()?;
        let key = ApiKey::try_from(R::KEY).expect("key");
        let h = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("resp header");
        assert_eq!(h.correlation_id, self.correlation);
        Some(R::Response::decode(&mut frame, version).expect("decode response"))
    }

    /// True if the server closes the connection within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// One v2 batch of records with values `values`, optionally idempotent.
pub fn batch(
    values: &[&[u8]],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant.
            sequence: if seq < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

pub fn get_i16(b: &[u8]) -> i16 {
    (&b[..2]).get_i16()
}

impl Client {
    /// A client of `host:port`, or None if nothing listens there.
    pub fn try_connect_to(host: &str, port: u16) -> Option<Client> {
        let addr = format!("{host}:{port}").parse().ok()?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .ok()?;
        Some(Client {
            stream,
            correlation: 0,
        })
    }

    /// Connects to `host:port` (cluster nodes listen on 127.0.0.1–127.0.0.3).
    pub fn connect_to(host: &str, port: u16) -> Client {
        let stream = TcpStream::connect((host, port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation: 0,
        }
    }
}

/// One node of a local cluster: node `id` listens on 127.0.0.`id`, clients on
/// `port`, Raft on `controller_port` (the same ports on every node, each on its own
/// address). Killed on drop; the data directory is removed by [`Cluster`].
pub struct ClusterNode {
    pub id: u32,
    pub host: String,
    pub port: u16,
    pub child: Option<Child>,
    pub dir: PathBuf,
    args: Vec<String>,
}

impl ClusterNode {
    /// Starts the process without waiting for it to listen.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fjord"));
        for a in &self.args {
            cmd.arg("--override").arg(a);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        self.child = Some(cmd.spawn().expect("spawn fjord"));
    }

    /// Waits until the node answers requests on its client port.
    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers_api_versions(&self.host, self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node {} did not start listening", self.id);
    }

    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGTERM and wait (clean shutdown).
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    pub fn client(&self) -> Client {
        Client::connect_to(&self.host, self.port)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A cluster of `n` combined broker+controller nodes on 127.0.0.1–127.0.0.`n`.
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    root: PathBuf,
}

impl Cluster {
    /// Starts every node (all voters), then waits until each listens. `extra` are
    /// `key=value` overrides given to every node.
    pub fn start(name: &str, n: u32, extra: &[&str]) -> Cluster {
        Cluster::start_some(name, n, n, extra)
    }

    /// A cluster of `n` voters of which only nodes `1..=running` are started (the
    /// others can be started later with `node(i).spawn()`).
    pub fn start_some(name: &str, n: u32, running: u32, extra: &[&str]) -> Cluster {
        let root =
            std::env::temp_dir().join(format!("fjord-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let port = free_port();
        let controller_port = free_port();
        let voters: Vec<String> = (1..=n)
            .map(|i| format!("{i}@127.0.0.{i}:{controller_port}"))
            .collect();
        let nodes = (1..=n)
            .map(|i| {
                let host = format!("127.0.0.{i}");
                let dir = root.join(format!("node{i}"));
                let mut args = vec![
                    format!("node.id={i}"),
                    "process.roles=broker,controller".to_string(),
                    format!(
                        "listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}"
                    ),
                    "controller.listener.names=CONTROLLER".to_string(),
                    format!("controller.quorum.voters={}", voters.join(",")),
                    format!("log.dirs={}", dir.display()),
                    "fjord.cores=1".to_string(),
                ];
                args.extend(extra.iter().map(|s| s.to_string()));
                ClusterNode {
                    id: i,
                    host,
                    port,
                    child: None,
                    dir,
                    args,
                }
            })
            .collect();
        let mut c = Cluster { nodes, root };
        for node in c.nodes.iter_mut().take(running as usize) {
            node.spawn();
        }
        for node in c.nodes.iter().take(running as usize) {
            node.wait_listening();
        }
        c
    }

    pub fn node(&mut self, id: u32) -> &mut ClusterNode {
        &mut self.nodes[id as usize - 1]
    }

    /// A client of node `id`, or None if it does not listen.
    pub fn client_of(&self, id: i32) -> Option<Client> {
        let n = self.nodes.get(usize::try_from(id).ok()?.checked_sub(1)?)?;
        Client::try_connect_to(&n.host, n.port)
    }

    /// Node `id`'s log of `topic`-`partition`: its segment files in offset order, or
    /// None if it keeps no such directory.
    pub fn log_bytes(&self, id: i32, topic: &str, partition: i32) -> Option<Vec<u8>> {
        let dir = self.nodes[id as usize - 1]
            .dir
            .join(format!("{topic}-{partition}"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        Some(
            files
                .iter()
                .flat_map(|f| std::fs::read(f).unwrap_or_default())
                .collect(),
        )
    }
}

/// CreateTopics of `topic` with `partitions` placed by the broker, replication
/// factor 3 and `min.insync.replicas=2`.
pub fn replicated_topic(
    topic: &str,
    partitions: i32,
) -> kafka_protocol::messages::CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_static_str("2")))])])
}

/// Creates the topics of `req` through node 1, retrying (30 s) while the cluster
/// forms; TOPIC_ALREADY_EXISTS on a retry counts as created (an earlier try landed).
pub fn create_topics(cluster: &Cluster, req: &kafka_protocol::messages::CreateTopicsRequest) {
    wait_for(Duration::from_secs(30), "the topic", || {
        let r = cluster.client_of(1)?.try_request(7, req)?;
        let code = r.topics[0].error_code;
        (code == 0 || code == 36).then_some(())
    });
}

/// Polls `f` every 50 ms until it returns Some; panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
