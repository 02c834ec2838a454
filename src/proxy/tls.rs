//! The connection under an upstream HTTP connection: plain TCP, or TLS originated as the
//! cluster's DestinationRule asks (routing/tls.rs builds the configuration).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::capture::UpstreamErrorKind;
use crate::routing::tls::UpstreamTls;

use super::pool::SendFailure;

/// A connection to an endpoint, as hyper reads and writes it.
#[derive(Debug)]
pub(super) enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// `stream` as the cluster speaks on it: TLS after a handshake within `timeout`, or as it is.
pub(super) async fn secure(
    stream: TcpStream,
    tls: Option<&Arc<UpstreamTls>>,
    timeout: Duration,
) -> Result<UpstreamIo, SendFailure> {
    let Some(tls) = tls else {
        return Ok(UpstreamIo::Plain(stream));
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
    let handshake = connector.connect(tls.server_name.clone(), stream);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => Ok(UpstreamIo::Tls(Box::new(stream))),
        Ok(Err(err)) => Err((UpstreamErrorKind::Tls, tls_detail(&err, tls))),
        Err(_) => Err((
            UpstreamErrorKind::ConnectTimeout,
            format!("no TLS handshake within the connect timeout of {timeout:?}"),
        )),
    }
}

/// What went wrong in a handshake, in words: rustls's error when there is one (`invalid
/// peer certificate: UnknownIssuer`, `... NotValidForName`), else the I/O error.
fn tls_detail(err: &io::Error, tls: &UpstreamTls) -> String {
    let reason = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map_or_else(|| err.to_string(), ToString::to_string);
    format!("{}: TLS handshake failed: {reason}", tls.describe)
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
