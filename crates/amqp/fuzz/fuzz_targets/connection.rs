//! Arbitrary bytes after a valid protocol header, fed to a whole connection whose
//! application accepts every link: the engine must end the connection (error or not)
//! without panicking.
#![no_main]

use std::time::Duration;

use busdrain_amqp::types::messaging::{Accepted, DeliveryState};
use busdrain_amqp::{
    AttachReply, ConnectionConfig, ConnectionEvent, IncomingLinkEvent, Link, OutgoingDelivery,
    OutgoingLinkEvent,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    silence_caught_panics();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let config = ConnectionConfig {
            max_frame_size: 4096,
            ..ConnectionConfig::default()
        };
        let (mut connection, driver) = busdrain_amqp::accept(server, config);
        let driver = tokio::spawn(driver.run());
        let app = tokio::spawn(async move {
            while let Some(event) = connection.next_event().await {
                if let ConnectionEvent::Attach(attach) = event {
                    let reply = AttachReply::echo(attach.attach());
                    match attach.accept(reply) {
                        Link::Incoming(mut link) => {
                            tokio::spawn(async move {
                                while let Some(IncomingLinkEvent::Delivery(d)) =
                                    link.next_event().await
                                {
                                    link.settle(d.delivery_id, DeliveryState::Accepted(Accepted {}));
                                }
                            });
                        }
                        Link::Outgoing(mut link) => {
                            tokio::spawn(async move {
                                let mut tag = 0u128;
                                while let Some(event) = link.next_event().await {
                                    match event {
                                        OutgoingLinkEvent::Flow { drain, .. } => {
                                            tag += 1;
                                            let _ = link.try_send(OutgoingDelivery {
                                                tag: tag.to_be_bytes(),
                                                message_format: 0,
                                                settled: false,
                                                payload: bytes::Bytes::from_static(&[0x00, 0x53, 0x77, 0x40]),
                                            });
                                            if drain {
                                                link.drained();
                                            }
                                        }
                                        OutgoingLinkEvent::Disposition(d) if !d.settled => {
                                            link.settle(d.delivery_id, DeliveryState::Accepted(Accepted {}));
                                        }
                                        OutgoingLinkEvent::Detached { .. } => break,
                                        _ => {}
                                    }
                                }
                            });
                        }
                    }
                }
            }
        });
        let _ = client.write_all(b"AMQP\x00\x01\x00\x00").await;
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        // Keep reading what the server writes so it never blocks on a full pipe.
        let reader = tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
        app.abort();
        reader.abort();
    });
});

/// libfuzzer-sys aborts on every panic, even one the engine catches on purpose (see
/// `busdrain_amqp::from_slice_checked`). An uncaught panic still aborts: it cannot unwind
/// out of the fuzz entry point.
fn silence_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
