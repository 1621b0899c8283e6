//! Protocol header and SASL negotiation (parts 2.2 and 5.3), before any AMQP frame.
//!
//! We always wait for the client's header before sending ours: rhea stalls when the SASL
//! outcome, our AMQP header and `open` arrive in one TCP segment.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::ConnectionConfig;
use crate::encode;
use crate::error::ConnectionError;
use crate::frame::{self, FrameBody, SaslBody};

pub(crate) const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
pub(crate) const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";

/// Largest SASL frame we accept (sasl-init carries at most a token).
const MAX_SASL_FRAME: u32 = 64 * 1024;

/// Run the header exchange (and SASL, if the client asks for it). Returns the SASL
/// mechanism the client chose. Bytes the client pipelined after its AMQP header stay in
/// `inbuf`.
pub(crate) async fn negotiate<IO>(
    io: &mut IO,
    inbuf: &mut BytesMut,
    config: &ConnectionConfig,
) -> Result<Option<String>, ConnectionError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let header = read_header(io, inbuf).await?;
    if header == AMQP_HEADER {
        io.write_all(&AMQP_HEADER).await?;
        io.flush().await?;
        return Ok(None);
    }
    if header != SASL_HEADER {
        // Spec: answer with a header we support, then close.
        io.write_all(&AMQP_HEADER).await?;
        io.flush().await?;
        return Err(ConnectionError::UnsupportedProtocol(header));
    }

    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(&SASL_HEADER);
    encode::sasl_mechanisms(&mut out, &config.sasl_mechanisms).map_err(|e| {
        ConnectionError::Io(std::io::Error::other(format!(
            "encoding sasl-mechanisms: {e}"
        )))
    })?;
    io.write_all(&out).await?;
    io.flush().await?;

    let frame = read_sasl_frame(io, inbuf).await?;
    let mechanism = match frame.body {
        FrameBody::Sasl(SaslBody::Init(init)) => init.mechanism.0,
        other => {
            return Err(protocol_error(format!(
                "expected sasl-init, got {}",
                body_name(&other)
            )))
        }
    };

    out.clear();
    encode::sasl_outcome_ok(&mut out);
    io.write_all(&out).await?;
    io.flush().await?;

    let header = read_header(io, inbuf).await?;
    if header != AMQP_HEADER {
        io.write_all(&AMQP_HEADER).await?;
        io.flush().await?;
        return Err(ConnectionError::UnsupportedProtocol(header));
    }
    io.write_all(&AMQP_HEADER).await?;
    io.flush().await?;
    Ok(Some(mechanism))
}

async fn read_header<IO: AsyncRead + Unpin>(
    io: &mut IO,
    inbuf: &mut BytesMut,
) -> Result<[u8; 8], ConnectionError> {
    fill(io, inbuf, 8).await?;
    let mut header = [0u8; 8];
    header.copy_from_slice(&inbuf[..8]);
    inbuf.advance(8);
    Ok(header)
}

async fn read_sasl_frame<IO: AsyncRead + Unpin>(
    io: &mut IO,
    inbuf: &mut BytesMut,
) -> Result<frame::Frame, ConnectionError> {
    fill(io, inbuf, 4).await?;
    let size = frame::peek_frame_size(inbuf, MAX_SASL_FRAME)
        .map_err(|e| protocol_error(e.to_string()))?
        .unwrap_or(4);
    fill(io, inbuf, size).await?;
    let bytes = inbuf.split_to(size).freeze();
    frame::decode_frame_bytes(bytes).map_err(|e| protocol_error(e.to_string()))
}

async fn fill<IO: AsyncRead + Unpin>(
    io: &mut IO,
    inbuf: &mut BytesMut,
    needed: usize,
) -> Result<(), ConnectionError> {
    while inbuf.len() < needed {
        inbuf.reserve(needed - inbuf.len());
        if io.read_buf(inbuf).await? == 0 {
            return Err(ConnectionError::Io(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
    Ok(())
}

fn protocol_error(description: String) -> ConnectionError {
    use crate::types::definitions::{ConnectionError as ConnErr, Error};
    ConnectionError::Protocol(Error::new(ConnErr::FramingError, Some(description), None))
}

fn body_name(body: &FrameBody) -> &'static str {
    match body {
        FrameBody::Empty => "an empty frame",
        FrameBody::Amqp { .. } => "an AMQP frame",
        FrameBody::Sasl(SaslBody::Mechanisms(_)) => "sasl-mechanisms",
        FrameBody::Sasl(SaslBody::Init(_)) => "sasl-init",
        FrameBody::Sasl(SaslBody::Challenge(_)) => "sasl-challenge",
        FrameBody::Sasl(SaslBody::Response(_)) => "sasl-response",
        FrameBody::Sasl(SaslBody::Outcome(_)) => "sasl-outcome",
    }
}
