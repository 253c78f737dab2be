//! Takes a provider's secrets out of what it answered, in every form an echo may carry them:
//! as configured, JSON-escaped, percent-encoded, base64 (SMTP AUTH), and a URL's path or query.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Derived forms shorter than this are left alone (a path like `/hook` names no secret).
const MIN_FORM: usize = 8;

pub struct Redactor {
    /// Longest first, so a form inside another is not replaced before it.
    forms: Vec<String>,
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forms = Vec::new();
        for s in secrets.into_iter().filter(|s| !s.is_empty()) {
            forms.push(s.to_owned());
            let mut derived = vec![
                s.replace('/', "\\/"),
                url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                STANDARD.encode(s),
            ];
            // Each word of a header value (`Bearer TOKEN`).
            derived.extend(s.split_whitespace().map(str::to_owned));
            if let Ok(u) = url::Url::parse(s)
                && u.has_host()
            {
                let path = u.path().to_owned();
                derived.extend(u.query().map(str::to_owned));
                // Each query value, and the path's last segment that is not empty.
                derived.extend(u.query_pairs().map(|(_, v)| v.into_owned()));
                derived.extend(path.split('/').rev().find(|p| !p.is_empty()).map(str::to_owned));
                derived.push(match u.query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                });
            }
            // Percent-encoding with lowercase hex digits too.
            let lower = url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            derived.push(lower_hex(&lower));
            forms.extend(derived.into_iter().filter(|f| f.len() >= MIN_FORM));
        }
        Redactor::sorted(forms)
    }

    /// Also redacts `form` exactly (a credential as a protocol encodes it).
    pub fn with(self, form: String) -> Self {
        let mut forms = self.forms;
        forms.push(form);
        Redactor::sorted(forms)
    }

    fn sorted(mut forms: Vec<String>) -> Self {
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for f in &self.forms {
            text = text.replace(f.as_str(), "***");
        }
        text
    }
}

/// `%2F` as `%2f`: the same bytes, percent-encoded with lowercase hex digits.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&code.to_ascii_lowercase());
        rest = &rest[i + code.len()..];
    }
    out.push_str(rest);
    out
}

/// How SMTP `AUTH PLAIN` carries a user and password.
pub fn auth_plain(user: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_taken_out() {
        let url = "https://hooks.slack.test/services/T0001/B0002/XXXXsecretXXXX?token=abcdefgh12";
        let r = Redactor::new([url, "R0UT3K3Y"]).with(auth_plain("bob", "hunter22"));
        let answers = [
            format!("no hook at {url}"),
            r#"{"url":"https:\/\/hooks.slack.test\/services\/T0001\/B0002\/XXXXsecretXXXX?token=abcdefgh12"}"#
                .to_owned(),
            "404 /services/T0001/B0002/XXXXsecretXXXX?token=abcdefgh12 not found".to_owned(),
            "unknown channel XXXXsecretXXXX".to_owned(),
            "bad token=abcdefgh12".to_owned(),
            "key R0UT3K3Y invalid".to_owned(),
            format!("535 bad credentials {}", auth_plain("bob", "hunter22")),
            format!("redirect to {}", url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()),
        ];
        for a in answers {
            let out = r.apply(&a);
            for secret in ["XXXXsecretXXXX", "abcdefgh12", "R0UT3K3Y", &auth_plain("bob", "hunter22")] {
                assert!(!out.contains(secret), "{secret} in {out}");
            }
            assert!(out.contains("***"), "{out}");
        }
    }

    #[test]
    fn parts_of_a_secret_are_taken_out_too() {
        let r = Redactor::new(["https://h.test/a/SECRETSECRET/?token=QUERYVAL99&ch=x", "Bearer TOKEN123456"]);
        for echo in [
            "bad SECRETSECRET",
            "QUERYVAL99 is revoked",
            "TOKEN123456 expired",
            "at https%3a%2f%2fh.test%2fa%2fSECRETSECRET%2f%3ftoken%3dQUERYVAL99%26ch%3dx",
        ] {
            let out = r.apply(echo);
            for secret in ["SECRETSECRET", "QUERYVAL99", "TOKEN123456"] {
                assert!(!out.contains(secret), "{secret} in {out}");
            }
        }
        assert_eq!(r.apply("Bearer auth failed"), "Bearer auth failed", "short words are left alone");
    }

    #[test]
    fn short_parts_of_a_url_are_left_alone() {
        let r = Redactor::new(["http://127.0.0.1:9/hook"]);
        assert_eq!(r.apply("POST /hook: 404"), "POST /hook: 404");
        assert_eq!(r.apply("at http://127.0.0.1:9/hook"), "at ***");
    }
}
