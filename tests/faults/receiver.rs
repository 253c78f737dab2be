//! A local receiver for `sitemon notify`'s providers: records every request (path, headers, JSON
//! body) and answers as the provider it stands for would — a generic webhook (200), Slack's
//! incoming webhook (200 `ok`), PagerDuty's Events API v2 (202 with `status`, `message` and the
//! `dedup_key`) — unless a path is given a script of answers first (429 with `Retry-After`,
//! 500, 400 with the provider's error body, or a hang).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: serde_json::Value,
    /// What it was answered.
    pub status: u16,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
    /// Hold the request this long before answering.
    pub hang: Duration,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Answer { status, retry_after: None, body: body.to_owned(), hang: Duration::ZERO }
    }

    pub fn retry_after(mut self, v: &str) -> Self {
        self.retry_after = Some(v.to_owned());
        self
    }

    pub fn hang(mut self, d: Duration) -> Self {
        self.hang = d;
        self
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Requests that arrived (answered or not yet), by path.
    arrived: HashMap<String, usize>,
    /// Paths down (answering this) until the moment given.
    down: HashMap<String, (tokio::time::Instant, Answer)>,
    scripts: HashMap<String, VecDeque<Answer>>,
    /// Paths that answer with the last scripted answer for ever.
    forever: HashMap<String, Answer>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// The provider's own answer when no script says otherwise.
fn default_answer(path: &str, body: &serde_json::Value) -> Answer {
    if path.starts_with("/pagerduty") {
        let dedup = body["dedup_key"].as_str().unwrap_or_default();
        Answer::new(
            202,
            &format!(r#"{{"status":"success","message":"Event processed","dedup_key":"{dedup}"}}"#),
        )
    } else if path.starts_with("/slack") {
        Answer::new(200, "ok")
    } else {
        Answer::new(200, "")
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let answer = {
        let mut s = state.lock().unwrap();
        *s.arrived.entry(path.clone()).or_default() += 1;
        let down =
            s.down.get(&path).filter(|(until, _)| tokio::time::Instant::now() < *until).map(|d| d.1.clone());
        let scripted = s.scripts.get_mut(&path).and_then(VecDeque::pop_front);
        down.or(scripted)
            .or_else(|| s.forever.get(&path).cloned())
            .unwrap_or_else(|| default_answer(&path, &body))
    };
    if !answer.hang.is_zero() {
        tokio::time::sleep(answer.hang).await;
    }
    state.lock().unwrap().received.push(Received { path, headers, body, status: answer.status });
    let mut resp = Response::builder().status(answer.status);
    if let Some(r) = &answer.retry_after {
        resp = resp.header("retry-after", r);
    }
    Ok(resp.body(Full::new(Bytes::from(answer.body))).expect("response"))
}

impl Receiver {
    /// Serves on a loopback port until the test process ends.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests to `path` get these answers, in order.
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        self.state.lock().unwrap().scripts.entry(path.to_owned()).or_default().extend(answers);
    }

    /// Every request to `path` gets this answer (after any script).
    pub fn always(&self, path: &str, answer: Answer) {
        self.state.lock().unwrap().forever.insert(path.to_owned(), answer);
    }

    /// `path` answers `answer` for `how_long` from now (a provider that is down).
    pub fn down_for(&self, path: &str, how_long: Duration, answer: Answer) {
        let until = tokio::time::Instant::now() + how_long;
        self.state.lock().unwrap().down.insert(path.to_owned(), (until, answer));
    }

    /// How many requests to `path` arrived, answered or not.
    pub fn arrived(&self, path: &str) -> usize {
        self.state.lock().unwrap().arrived.get(path).copied().unwrap_or(0)
    }

    /// The requests to `path` so far, in the order they were answered.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state.lock().unwrap().received.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}
