//! Raw TCP test servers that misbehave on purpose: each connection is handed to a closure.

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves every connection with `handler` until the test process ends.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(handler(stream));
        }
    });
    addr
}

/// Reads the request head (up to the blank line), so that answers come after the request.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Reads the request head and the body its `Content-Length` announces.
pub async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    let head = read_head(s).await;
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body).await;
    (head, body)
}

/// Reads the request, writes `response`, closes.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, response: &[u8]) {
    read_head(s).await;
    let _ = s.write_all(response).await;
    let _ = s.shutdown().await;
}
