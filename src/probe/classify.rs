//! Turns transport and protocol errors into a failure kind plus a short human message.

use std::error::Error as StdError;
use std::io;

use crate::domain::FailureKind;

/// A classified failure on the way to a response.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into() }
    }
}

/// The innermost message of an error chain, lowercase-first, without the OS error suffix.
pub fn root_message(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

pub fn connect(err: &io::Error) -> Failure {
    Failure::new(FailureKind::Connect, format!("cannot connect: {}", root_message(err)))
}

pub fn tls(err: &(dyn StdError + 'static)) -> Failure {
    Failure::new(FailureKind::Tls, format!("tls handshake failed: {}", root_message(err)))
}

/// Errors after the connection is up: the peer broke HTTP or the connection.
pub fn protocol(err: &hyper::Error) -> Failure {
    let what = if err.is_incomplete_message() {
        "connection closed before the response was complete".to_owned()
    } else if err.is_parse() {
        format!("invalid http response: {}", root_message(err))
    } else {
        root_message(err)
    };
    Failure::new(FailureKind::Protocol, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_short_and_lowercase() {
        let e = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let f = connect(&e);
        assert_eq!(f.kind, FailureKind::Connect);
        assert_eq!(f.message, "cannot connect: connection refused");
    }
}
