//! Containing panics raised inside the AMQP client.
//!
//! azservicebus 0.25.1 can panic on its own: `AmqpSender::send_batch_envelope` keeps the
//! delivery future of a transfer in the envelope between retries and, when that future
//! resolves to an error (the link was detached while the transfer waited for its outcome,
//! typically after a send timeout made it recover the link), leaves it there; the next retry
//! polls the finished future again and tokio's oneshot panics with `called after complete`
//! (fe2o3-amqp 0.14.1 `link/delivery.rs:454`). A panic must not take down the task that owns
//! the link (a connector receiver, `busdrain send`), so every call into the client goes through
//! [`contain`]: a panic becomes [`SourceError::Transient`], which the callers already answer by
//! reopening the link, and the handle that panicked is marked poisoned so it is never used again
//! (its internal state is whatever the unwinding left).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;

use super::SourceError;

/// Runs `call` (one operation on an azservicebus handle); a panic inside it is returned as a
/// transient error naming the operation and entity, and sets `poisoned`.
pub(crate) async fn contain<T>(
    operation: &str,
    entity: &str,
    poisoned: &mut bool,
    call: impl Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    if *poisoned {
        return Err(poisoned_error(operation, entity));
    }
    // AssertUnwindSafe: after a panic the handle the future borrowed is never used again
    // (`poisoned`), so no broken invariant can be observed.
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            *poisoned = true;
            let message = panic_message(payload.as_ref());
            tracing::error!(operation, entity, panic = %message, "the AMQP client panicked; the link will be reopened");
            Err(SourceError::Transient(format!(
                "{operation} on `{entity}`: the AMQP client panicked ({message}); reopen the link"
            )))
        }
    }
}

/// The error every call on a poisoned handle returns.
fn poisoned_error(operation: &str, entity: &str) -> SourceError {
    SourceError::Transient(format!(
        "{operation} on `{entity}`: the link is unusable after the AMQP client panicked; reopen it"
    ))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-text panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_transient_error_and_poisons_the_handle() {
        let mut poisoned = false;
        let result: Result<(), SourceError> = contain("sending", "orders", &mut poisoned, async {
            // The same panic tokio raises when azservicebus re-polls a finished delivery.
            panic!("called after complete")
        })
        .await;
        match result {
            Err(SourceError::Transient(text)) => {
                assert!(text.contains("called after complete"), "{text}");
                assert!(text.contains("`orders`"), "{text}");
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
        assert!(poisoned);

        // The handle is not touched again: the next call fails without running.
        let mut ran = false;
        let again = contain("sending", "orders", &mut poisoned, async {
            ran = true;
            Ok(())
        })
        .await;
        assert!(matches!(again, Err(SourceError::Transient(_))), "{again:?}");
        assert!(!ran);
    }

    #[tokio::test]
    async fn results_pass_through_untouched() {
        let mut poisoned = false;
        let ok = contain("receiving", "q", &mut poisoned, async { Ok(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let lost: Result<(), SourceError> = contain("complete", "q", &mut poisoned, async {
            Err(SourceError::LockLost("gone".into()))
        })
        .await;
        assert!(matches!(lost, Err(SourceError::LockLost(_))));
        assert!(!poisoned);
    }

    #[test]
    fn a_formatted_panic_message_is_kept() {
        let payload: Box<dyn Any + Send> = Box::new(String::from("index 3 out of range"));
        assert_eq!(panic_message(payload.as_ref()), "index 3 out of range");
        let opaque: Box<dyn Any + Send> = Box::new(42_u8);
        assert_eq!(panic_message(opaque.as_ref()), "a non-text panic payload");
    }
}
