//! Problem+json bodies for the answers hyper writes by itself.
//!
//! A request hyper cannot parse never reaches the router: hyper answers it at once — a
//! request target over its fixed 65,534-byte limit with `414`, a head over its buffer with
//! `431`, a malformed head with `400` — with an empty body, and closes the connection. Its
//! answer cannot be configured, so [`ProblemIo`] sits between hyper and the socket and
//! swaps that one answer for the same status with an RFC 9457 body and `Cache-Control:
//! no-store`, like every other error of the API. (No CORS headers: the request's `Origin`
//! was never parsed.)
//!
//! Hyper's automatic answer is recognised by its exact shape: a whole response head, no
//! more than a few hundred bytes, of status 400, 414 or 431 with `connection: close` and
//! `content-length: 0`. The router never writes that (its errors all carry a problem body),
//! and hyper writes it only when no other answer is under way on the connection.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The socket, with hyper's automatic error answers rewritten (see the module header).
#[derive(Debug)]
pub struct ProblemIo<T> {
    inner: T,
    /// A replacement answer still being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> ProblemIo<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The problem+json answer for hyper's automatic answer `head`, if it is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() > 512 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !(text.contains("\r\nconnection: close\r\n") && text.contains("\r\ncontent-length: 0\r\n")) {
        return None;
    }
    let (status, reason, kind, detail) = match text.get(..13)? {
        "http/1.1 414 " => (
            414,
            "URI Too Long",
            "uri-too-long",
            "the request target (path and query) is longer than 65534 bytes",
        ),
        "http/1.1 431 " => (
            431,
            "Request Header Fields Too Large",
            "request-header-fields-too-large",
            "the request head (request line and headers) is too large",
        ),
        "http/1.1 400 " => (
            400,
            "Bad Request",
            "bad-request",
            "the request is not valid HTTP/1.1 (request line or headers malformed)",
        ),
        _ => return None,
    };
    let body = serde_json::json!({
        "type": format!("/problems/{kind}"),
        "title": reason,
        "status": status,
        "detail": detail,
    })
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n\
             cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Writes out what is left of a replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = replacement(buf) {
            self.pending = Some((answer, 0));
            // The whole of hyper's answer counts as written; ours goes out in its place.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        let mut live = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (live.next(), live.next())
            && let Some(answer) = replacement(only)
        {
            self.pending = Some((answer, 0));
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_hyper_automatic_answers_are_replaced() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 26 Nov 2026 03:18:36 GMT\r\n\r\n";
        let answer = String::from_utf8(replacement(hyper).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(answer.contains("application/problem+json"));
        // Like every problem of the API: never kept by a cache (a 414 is cacheable by default).
        assert!(
            answer.contains("\r\ncache-control: no-store\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with(r#""status":414,"detail":"the request target (path and query) is longer than 65534 bytes"}"#));
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 90\r\n\r\n";
        assert!(replacement(app).is_none());
        assert!(replacement(b"{\"key\":\"HTTP/1.1 414 \"}").is_none());
    }
}
