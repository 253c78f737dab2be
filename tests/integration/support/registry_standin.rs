//! A stand-in for a schema registry, not a real one: no registry server installs from the
//! package registries this project uses. It implements exactly the REST subset sitemon and the
//! tests call, with what Confluent Schema Registry and Karapace 6.2 do there:
//! - `POST /subjects/{subject}/versions` `{"schema": "...", "schemaType"?: "AVRO"}` → `{"id": n}`;
//!   415 unless the content type is `application/vnd.schemaregistry.v1+json`,
//!   `application/vnd.schemaregistry+json` or `application/json`; the same schema (by its
//!   re-serialised text) gets the same id, under this subject or any other; 422 / 42201 for a
//!   schema that is not JSON; 409 when the subject's latest version cannot be read with it
//!   (BACKWARD, the default: a field added without a default, or a field whose type changed);
//! - `GET /schemas/ids/{id}` → `{"schema": "..."}`, the text re-serialised compact with keys
//!   sorted (so nobody may compare schema text byte for byte); 404 / 40403 for an unknown id;
//! - `GET /subjects/{subject}/versions` → `[1, 2, ...]`; 404 / 40401 for an unknown subject;
//! - errors are JSON `{"error_code": n, "message": "..."}`.
//!
//! [`Registry::set_down`] makes it drop every connection without an answer, as an unreachable
//! registry would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    /// Schema text (re-serialised) by id - 1.
    schemas: Vec<String>,
    /// Ids of each subject's versions, oldest first.
    subjects: HashMap<String, Vec<u32>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    down: AtomicBool,
    /// Connections dropped while down.
    refused: AtomicUsize,
    /// `GET /schemas/ids/{id}` requests answered.
    lookups: AtomicUsize,
}

/// A running stand-in; lives until the test process ends.
#[derive(Clone)]
pub struct Registry {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Registry {
    pub async fn start() -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the registry stand-in");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                if s.down.load(Ordering::SeqCst) {
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                    continue;
                }
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Registry { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    pub fn lookups(&self) -> usize {
        self.shared.lookups.load(Ordering::SeqCst)
    }

    /// The ids registered under `subject`, oldest first.
    pub fn versions(&self, subject: &str) -> Vec<u32> {
        self.shared.state.lock().unwrap().subjects.get(subject).cloned().unwrap_or_default()
    }

    /// Registers a schema directly, as another client of the registry would; the id or the
    /// registry's error answer.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, (StatusCode, Value)> {
        register(&mut self.shared.state.lock().unwrap(), subject, schema)
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    (status, json!({"error_code": code, "message": message}))
}

/// Compact JSON with object keys sorted, as Karapace re-serialises a schema.
pub fn reserialise(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), reserialise(&map[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(reserialise).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// BACKWARD: can a reader with `new` read what was written with `old`? Every field of `new`
/// must be in `old` with the same type, or have a default. (Fields of `old` that `new` drops
/// are skipped by the reader.) Enough for record schemas whose field types are compared whole.
fn backward_compatible(new: &Value, old: &Value) -> Result<(), String> {
    let fields = |s: &Value| s["fields"].as_array().cloned().unwrap_or_default();
    let old_fields = fields(old);
    for f in fields(new) {
        let name = f["name"].as_str().unwrap_or_default();
        match old_fields.iter().find(|o| o["name"] == f["name"]) {
            Some(o) if reserialise(&o["type"]) != reserialise(&f["type"]) => {
                return Err(format!("field `{name}` changed its type"));
            }
            Some(_) => {}
            None if f.get("default").is_some() => {}
            None => return Err(format!("field `{name}` was added without a default")),
        }
    }
    Ok(())
}

fn register(state: &mut State, subject: &str, schema: &str) -> Result<u32, (StatusCode, Value)> {
    let parsed: Value = serde_json::from_str(schema).map_err(|e| {
        error(StatusCode::UNPROCESSABLE_ENTITY, 42201, &format!("Invalid schema {schema}: {e}"))
    })?;
    let text = reserialise(&parsed);
    let existing = state.schemas.iter().position(|s| *s == text).map(|i| i as u32 + 1);
    let versions = state.subjects.get(subject).cloned().unwrap_or_default();
    if let Some(id) = existing
        && versions.contains(&id)
    {
        return Ok(id);
    }
    if let Some(latest) = versions.last() {
        let old: Value = serde_json::from_str(&state.schemas[*latest as usize - 1]).expect("stored schema");
        if let Err(why) = backward_compatible(&parsed, &old) {
            return Err(error(
                StatusCode::CONFLICT,
                409,
                &format!("Incompatible schema, compatibility_mode=BACKWARD: {why}"),
            ));
        }
    }
    let id = existing.unwrap_or_else(|| {
        state.schemas.push(text);
        state.schemas.len() as u32
    });
    state.subjects.entry(subject.to_owned()).or_default().push(id);
    Ok(id)
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = answer(&shared, req).await.unwrap_or_else(|e| e);
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response");
    Ok(response)
}

async fn answer(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<(StatusCode, Value), (StatusCode, Value)> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let content_type =
        req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::POST, ["subjects", subject, "versions"]) => {
            let accepted = [
                "application/vnd.schemaregistry.v1+json",
                "application/vnd.schemaregistry+json",
                "application/json",
            ];
            if !accepted.iter().any(|a| content_type.split(';').next().unwrap_or_default().trim() == *a) {
                return Err(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    415,
                    "HTTP 415 Unsupported Media Type",
                ));
            }
            let request: Value = serde_json::from_slice(&body).map_err(|_| {
                error(StatusCode::UNPROCESSABLE_ENTITY, 422, "Unrecognized field or malformed body")
            })?;
            if request.get("schemaType").is_some_and(|t| t != "AVRO") {
                return Err(error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Only AVRO in this stand-in"));
            }
            let schema = request["schema"].as_str().unwrap_or_default().to_owned();
            let id = register(&mut shared.state.lock().unwrap(), subject, &schema)?;
            Ok((StatusCode::OK, json!({"id": id})))
        }
        (Method::GET, ["schemas", "ids", id]) => {
            shared.lookups.fetch_add(1, Ordering::SeqCst);
            let state = shared.state.lock().unwrap();
            let text = id.parse::<usize>().ok().filter(|i| *i >= 1).and_then(|i| state.schemas.get(i - 1));
            match text {
                Some(t) => Ok((StatusCode::OK, json!({"schema": t}))),
                None => Err(error(StatusCode::NOT_FOUND, 40403, "Schema not found")),
            }
        }
        (Method::GET, ["subjects", subject, "versions"]) => {
            match shared.state.lock().unwrap().subjects.get(*subject) {
                Some(v) => Ok((StatusCode::OK, json!((1..=v.len()).collect::<Vec<_>>()))),
                None => Err(error(StatusCode::NOT_FOUND, 40401, &format!("Subject '{subject}' not found."))),
            }
        }
        _ => Err(error(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")),
    }
}

/// A plain HTTP/1.1 request to the stand-in, as an independent client would make it: the
/// status and the JSON answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the stand-in");
    let ct = content_type.map(|c| format!("content-type: {c}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{ct}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8(out).expect("utf-8 answer");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
