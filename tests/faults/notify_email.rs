//! `sitemon notify`'s email provider against a real SMTP server (aiosmtpd, installed by
//! `scripts/smtp-server`): STARTTLS with a certificate from a test CA given as `ca_file`, AUTH, one
//! message per delivery with its `Message-ID`, and a wrong password refused for good (535),
//! recorded with the answer and never quoted with the password.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::harness::{ONE_AT_A_TIME, Setup, rows};
use crate::notify::{closed, config, opened, publish};
use crate::support::tls::Pki;
use crate::support::{describe, sitemon, unique};

const PASSWORD: &str = "smtp-pa55word";

/// The SMTP server on a free loopback port, saving messages into `dir`; killed when dropped.
async fn smtp_server(dir: &std::path::Path, pki: &Pki) -> (u16, tokio::process::Child) {
    let leaf = pki.valid();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &leaf.cert).unwrap();
    std::fs::write(&key, &leaf.key).unwrap();
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp-server");
    let mut child = tokio::process::Command::new(script)
        .args(["--port", &port.to_string(), "--dir", mail.to_str().unwrap()])
        .args(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()])
        .args(["--user", "alerts", "--password", PASSWORD])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SMTP server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"), "the SMTP server did not start: {ready:?}");
    (port, child)
}

/// The saved messages, in the order received.
fn messages(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().take_while(|l| !l.is_empty()).find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test(flavor = "multi_thread")]
async fn email_over_starttls_with_auth_once_per_delivery() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let pki = Pki::new();
    let (port, _server) = smtp_server(s.dir.path(), &pki).await;
    let topic = unique("sitemon-notify-email");
    let shop = opened("shop", None);
    publish(&s.bootstrap, &topic, &[shop.clone(), closed(&shop)]).await;
    let ca = pki.ca_file.display();
    let providers = format!(
        "  providers:\n\
         \x20   mail: {{type: email, host: localhost, port: {port}, username: alerts, password: '${{SMTP_PASSWORD}}', \
                  from: 'sitemon <alerts@example.test>', to: [oncall@example.test, ops@example.test], ca_file: '{ca}'}}\n\
         \x20   wrong: {{type: email, host: localhost, port: {port}, username: alerts, password: not-it, \
                  from: alerts@example.test, to: [x@example.test], ca_file: '{ca}'}}\n\
         \x20 routes:\n    - {{name: all, providers: [mail, wrong]}}\n"
    );
    let cfg = config(&s, &topic, &unique("notify-email"), &providers);
    let mut env = s.env().to_vec();
    env.push(("SMTP_PASSWORD", PASSWORD));
    let out =
        sitemon(&["notify", "-c", &cfg, "--exit-when-idle", "3s"], &env, Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();

    let got = messages(s.dir.path());
    assert_eq!(got.len(), 2, "the opening and the closing, once each: {got:#?}");
    assert_eq!(header(&got[0], "Subject"), Some("DOWN: shop"), "{}", got[0]);
    assert_eq!(header(&got[1], "Subject"), Some("UP: shop"), "{}", got[1]);
    assert_eq!(header(&got[0], "From"), Some("sitemon <alerts@example.test>"));
    assert_eq!(header(&got[0], "To"), Some("oncall@example.test, ops@example.test"));
    assert!(got[0].contains("shop is down since"), "{}", got[0]);
    // Message-IDs are the delivery ids.
    let mut c = crate::support::connect(&s.db).await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT delivery_id FROM notify_deliveries WHERE provider = 'mail' AND state = 'SENT' ORDER BY seq",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let message_ids: Vec<String> = got.iter().map(|m| header(m, "Message-ID").unwrap().to_owned()).collect();
    assert_eq!(message_ids, ids.iter().map(|id| format!("<{id}@sitemon>")).collect::<Vec<_>>());

    // The wrong password: refused for good, asked once per message, the answer kept.
    let failed = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE provider = 'wrong' AND state = 'FAILED' AND answer LIKE '%535%' AND attempts = 1").await;
    assert_eq!(failed, 2, "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("not-it"), "{log}");
    let leaked = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE coalesce(answer, '') LIKE '%not-it%' OR body::text LIKE '%pa55word%'").await;
    assert_eq!(leaked, 0);
}
