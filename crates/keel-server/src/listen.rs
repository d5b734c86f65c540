//! Accepting connections: HTTP/1.1 with a deadline for a request's headers
//! and one for its body, an idle timeout between requests, and a cap on
//! open connections — so slow or silent clients cannot hold the server's
//! descriptors (see docs/configuration.md and docs/security.md).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How the server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The longest a client may take to send a request's headers, from the
    /// moment the server waits for them.
    pub header_read: Duration,
    /// The longest a client may take to send a request's body.
    pub body_read: Duration,
    /// How long a connection may stay open with no request in flight and no
    /// byte moving.
    pub idle: Duration,
    /// Connections open at once; past it the server stops accepting (the
    /// kernel queues the rest) until one closes, and says so in the log.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for headers, 60 s for a body, 75 s idle, 1 024 connections.
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(60),
            idle: Duration::from_secs(75),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached: not accepting until a connection closes"
                );
                tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, limits, &mut stop).await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    // Graceful: every connection finishes its request in flight and closes,
    // handing back its slot; all slots back means all closed.
    let _ = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: ConnectionLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    let activity = Arc::new(Activity { last: AtomicU64::new(0), in_flight: AtomicUsize::new(0) });
    let io = TokioIo::new(Watched { inner: stream, epoch, activity: Arc::clone(&activity) });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let activity = Arc::clone(&activity);
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            let call = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let answer = call.await;
                activity.touch(epoch);
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                answer
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let check = (limits.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(check), if !closing => {
                let quiet = epoch.elapsed().saturating_sub(Duration::from_millis(activity.last.load(Ordering::Relaxed)));
                if activity.in_flight.load(Ordering::Relaxed) == 0 && quiet >= limits.idle {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When a connection last moved a byte (milliseconds since it opened) and
/// how many of its requests are being answered.
struct Activity {
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self, epoch: Instant) {
        let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

/// A stream that notes when bytes move.
struct Watched<S> {
    inner: S,
    epoch: Instant,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch(self.epoch);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch(self.epoch);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
