//! The emulator holds 1,000 concurrent AMQP connections (Microsoft's emulator allows 10):
//! each completes the protocol header, SASL ANONYMOUS and `open` exchange and stays open
//! while one more connection is served, then all close on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use busdrain_emulator::{
    CancellationToken, Emulator, EmulatorOptions, NamespaceConfig, SasPolicies, SasPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 1000;

/// Reads one frame and returns the descriptor code of its performative.
async fn read_performative(stream: &mut TcpStream) -> std::io::Result<u8> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = u32::from_be_bytes(size) as usize;
    let mut rest = vec![0u8; size - 4];
    stream.read_exact(&mut rest).await?;
    let body_offset = rest[0] as usize * 4 - 4;
    // Body: 0x00 0x53 <code> …
    Ok(rest[body_offset + 2])
}

/// Protocol header, SASL ANONYMOUS, AMQP header and `open`; returns the open stream.
async fn handshake(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"AMQP\x03\x01\x00\x00").await?;
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    assert_eq!(
        read_performative(&mut stream).await?,
        0x40,
        "sasl-mechanisms"
    );
    let mut init = vec![
        0, 0, 0, 25, 2, 1, 0, 0, 0x00, 0x53, 0x41, 0xc0, 0x0c, 0x01, 0xa3, 0x09,
    ];
    init.extend_from_slice(b"ANONYMOUS");
    stream.write_all(&init).await?;
    assert_eq!(read_performative(&mut stream).await?, 0x44, "sasl-outcome");
    stream.write_all(b"AMQP\x00\x01\x00\x00").await?;
    stream
        .write_all(&[
            0, 0, 0, 17, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, b'c',
        ])
        .await?;
    stream.read_exact(&mut header).await?;
    assert_eq!(&header, b"AMQP\x00\x01\x00\x00");
    assert_eq!(read_performative(&mut stream).await?, 0x10, "open");
    Ok(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_thousand_concurrent_connections() {
    // Client and server ends of every connection live in this process.
    rlimit::increase_nofile_limit(u64::MAX).expect("open-file limit can be raised");
    let data_dir =
        std::env::temp_dir().join(format!("busdrain-emulator-conn-{}", uuid::Uuid::new_v4()));
    let emulator = Emulator::bind(EmulatorOptions {
        namespace: NamespaceConfig::default_namespace(),
        policies: SasPolicies::new(vec![SasPolicy::emulator_default()]),
        listen: "127.0.0.1:0".parse().expect("address"),
        http: None,
        data_dir: data_dir.clone(),
        max_message_size: 1024 * 1024,
        max_connections: CONNECTIONS + 1,
    })
    .await
    .expect("emulator binds");
    let addr = emulator.amqp_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(emulator.run(shutdown.clone()));

    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        opening.spawn(tokio::time::timeout(
            Duration::from_secs(60),
            handshake(addr),
        ));
    }
    let mut open = Vec::with_capacity(CONNECTIONS);
    while let Some(joined) = opening.join_next().await {
        let stream = joined
            .expect("handshake task")
            .expect("handshake within 60 s")
            .expect("handshake succeeds");
        open.push(stream);
    }
    assert_eq!(open.len(), CONNECTIONS);
    // All of them are still being served: one more completes its handshake too.
    let extra = handshake(addr)
        .await
        .expect("the 1001st connection is served");

    // Shutdown closes every connection: each client sees a `close` (or EOF).
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("emulator stops within 30 s")
        .expect("emulator task");
    for mut stream in open.into_iter().chain([extra]).take(10) {
        let closed =
            tokio::time::timeout(Duration::from_secs(5), read_performative(&mut stream)).await;
        assert!(
            matches!(closed, Ok(Ok(0x18)) | Ok(Err(_))),
            "expected close or EOF, got {closed:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}
