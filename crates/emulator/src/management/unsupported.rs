//! Operations the emulator does not know. They answer `501` with `amqp:not-implemented`, so an
//! SDK raises a clear error instead of timing out.

use crate::bridge::NOT_IMPLEMENTED;
use crate::request::Response;

pub(crate) fn answer(operation: &str) -> Response {
    Response::error(
        501,
        NOT_IMPLEMENTED,
        format!("the busdrain emulator does not implement {operation} yet"),
    )
}
