//! The request-body deadline (docs/security.md R7, `--request-timeout-seconds`): actix-web's
//! `client_request_timeout` bounds only the time to read the request head, so a client that
//! trickles its body one byte a second would otherwise hold its connection and a worker's
//! attention forever. The body must arrive within the deadline, counted from when its
//! request reached the handlers; past it, the read fails, the request is answered
//! `408 Request Timeout` and the connection is closed. Requests without a body pass
//! untouched, and a body that is already buffered never starts a timer.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpResponse, web};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::app::AppState;

pub async fn apply(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, impl MessageBody>>, actix_web::Error> {
    let expired: Leftover = Rc::default();
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        req.set_payload(payload);
    } else {
        let seconds = req
            .app_data::<web::Data<AppState>>()
            .map_or(10, |s| s.settings.request_timeout_seconds);
        req.set_payload(Payload::Stream {
            payload: Box::pin(Deadlined {
                inner: payload,
                deadline: Instant::now() + Duration::from_secs(seconds),
                timer: None,
                expired: expired.clone(),
            }),
        });
    }
    let res = next.call(req).await?;
    let Some(unread) = expired.borrow_mut().take() else {
        return Ok(res.map_into_left_body());
    };
    let (req, _) = res.into_parts();
    tracing::warn!(
        route = req.match_pattern().as_deref().unwrap_or("unmatched"),
        "request body not received within the request timeout; closing the connection"
    );
    let mut resp = HttpResponse::RequestTimeout()
        .content_type("application/json")
        .message_body(Holding {
            body: Some(Bytes::from_static(
                br#"{"error":"invalid_request","error_description":"The request body was not received in time."}"#,
            )),
            _unread: unread,
        })?;
    resp.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, resp).map_into_right_body())
}

/// Where the deadline leaves the unread request body: kept alive until the 408 is sent, for
/// actix-http closes a connection whose request body is unread, but drains one that was
/// dropped (a chunked body), which a trickling client could make last forever.
type Leftover = Rc<RefCell<Option<Payload>>>;

/// The 408's body, holding the unread request body until the response is written.
struct Holding {
    body: Option<Bytes>,
    _unread: Payload,
}

impl MessageBody for Holding {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.body.as_ref().map_or(0, |b| b.len() as u64))
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(self.body.take().map(Ok))
    }
}

/// The request body, failing with a timed-out I/O error once the deadline passes.
struct Deadlined {
    inner: Payload,
    deadline: Instant,
    /// Created only when the body is not already there (the common case never waits).
    timer: Option<Pin<Box<Sleep>>>,
    expired: Leftover,
}

impl Stream for Deadlined {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let unread = std::mem::replace(&mut this.inner, Payload::None);
                *this.expired.borrow_mut() = Some(unread);
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body timeout",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
