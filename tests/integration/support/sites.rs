//! Local test sites: a hyper server with one path per behaviour, plus a closed port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub const OK_BODY: &str = "hello from the sitemon test site: all systems operational";

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/ok" => (StatusCode::OK, OK_BODY),
        "/error" => (StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "/pause" => {
            // The behaviour under test: a site that takes a while but answers within its timeout.
            tokio::time::sleep(Duration::from_millis(300)).await;
            (StatusCode::OK, OK_BODY)
        }
        "/slow" => {
            // The behaviour under test: a site slower than its timeout.
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "too late")
        }
        _ => (StatusCode::NOT_FOUND, "no such page"),
    };
    Ok(Response::builder().status(status).body(Full::new(Bytes::from(body))).expect("response"))
}

/// Serves test paths on a loopback port until the test process ends.
pub async fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind test site");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
    addr
}

/// A loopback port with nothing listening, reserved while this value lives: the socket is
/// bound but never listens, so connections are refused and no other test can take the port.
pub struct ClosedPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let port = socket.local_addr().expect("addr").port();
    ClosedPort { port, _socket: socket }
}
