//! The connection task: owns the transport and all session and link state.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::ConnectionDriver;
use crate::error::ConnectionError;

pub(crate) async fn run<IO>(driver: ConnectionDriver<IO>) -> Result<(), ConnectionError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = driver;
    Err(ConnectionError::Io(std::io::Error::other(
        "busdrain-amqp engine not implemented yet",
    )))
}
