//! The leaf certificate's expiry, read from the handshake: notAfter found in place in the DER
//! (x509-parser for encodings that walk does not know).

use chrono::{DateTime, Utc};
use tokio_native_tls::TlsStream;

/// The leaf certificate's not-after time, when the peer sent a parseable certificate.
pub fn not_after<S>(stream: &TlsStream<S>) -> Option<DateTime<Utc>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let der = stream.get_ref().peer_certificate().ok()??.to_der().ok()?;
    not_after_der(&der)
}

/// notAfter of a DER certificate. The validity is the fifth field of the TBSCertificate, so the
/// common encoding (DER's `YYMMDDHHMMSSZ` UTCTime or `YYYYMMDDHHMMSSZ` GeneralizedTime) is read
/// in place; a certificate this walk does not understand is parsed whole by x509-parser, as every
/// certificate was before (a full parse was ~1.4 % of the producer's CPU per HTTPS check).
fn not_after_der(der: &[u8]) -> Option<DateTime<Utc>> {
    validity_not_after(der).or_else(|| {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
    })
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber
/// INTEGER, signature AlgorithmIdentifier, issuer Name, validity SEQUENCE { notBefore, notAfter },
/// … }, … } (RFC 5280 §4.1).
fn validity_not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (cert, _) = expect(0x30, der)?;
    let (tbs, _) = expect(0x30, cert)?;
    let (mut tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        (tag, _, rest) = tlv(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let (_, rest) = expect(0x30, rest)?; // signature algorithm
    let (_, rest) = expect(0x30, rest)?; // issuer
    let (validity, _) = expect(0x30, rest)?;
    let (_, _, rest) = tlv(validity)?; // notBefore
    match tlv(rest)? {
        (0x17, t, _) if t.len() == 13 => {
            let yy = i32::from(digits(&t[..2])?);
            time(if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
        }
        (0x18, t, _) if t.len() == 15 => {
            time(i32::from(digits(&t[..2])?) * 100 + i32::from(digits(&t[2..4])?), &t[4..])
        }
        _ => None,
    }
}

/// `MMDDHHMMSSZ` after the year.
fn time(year: i32, t: &[u8]) -> Option<DateTime<Utc>> {
    if t.len() != 11 || t[10] != b'Z' {
        return None;
    }
    let f = |i: usize| digits(&t[i..i + 2]).map(u32::from);
    let date = chrono::NaiveDate::from_ymd_opt(year, f(0)?, f(2)?)?;
    Some(date.and_hms_opt(f(4)?, f(6)?, f(8)?)?.and_utc())
}

fn digits(two: &[u8]) -> Option<u8> {
    match two {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

/// One DER element: (tag, content, what follows). Definite lengths up to 4 bytes only.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag number: not in these fields
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cert(not_after: (i32, u8, u8), time: (u8, u8, u8)) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2001, 2, 3);
        let (y, m, d) = not_after;
        p.not_after = rcgen::date_time_ymd(y, m, d)
            .replace_hour(time.0)
            .unwrap()
            .replace_minute(time.1)
            .unwrap()
            .replace_second(time.2)
            .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn oracle(der: &[u8]) -> Option<DateTime<Utc>> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
    }

    #[test]
    fn reads_utc_and_generalized_time_as_x509_parser_does() {
        // Before 2050 RFC 5280 asks for UTCTime, from 2050 on for GeneralizedTime.
        for (date, time) in [
            ((2031, 12, 31), (23, 59, 59)),
            ((2049, 1, 2), (0, 0, 0)),
            ((2050, 6, 7), (8, 9, 10)),
            ((2099, 2, 28), (12, 30, 1)),
            ((1999, 3, 4), (5, 6, 7)),
        ] {
            let der = cert(date, time);
            // A GeneralizedTime (tag 0x18, 15 bytes) holding this year: two bytes `18 0F` alone
            // also occur by chance in the random key and serial.
            let year = date.0.to_string();
            let generalized = der.windows(6).any(|w| w[..2] == [0x18, 15] && w[2..] == *year.as_bytes());
            assert_eq!(generalized, date.0 >= 2050, "{date:?}: rcgen's time type");
            let fast = validity_not_after(&der);
            assert!(fast.is_some(), "{date:?}: the in-place walk should read rcgen's certificate");
            assert_eq!(fast, oracle(&der), "{date:?} {time:?}");
            let (y, m, d) = date;
            let want =
                Utc.with_ymd_and_hms(y, m.into(), d.into(), time.0.into(), time.1.into(), time.2.into());
            assert_eq!(not_after_der(&der), want.single());
        }
    }

    #[test]
    fn utc_time_years_wrap_at_1950() {
        // SEQ { SEQ { INTEGER 1, SEQ {}, SEQ {}, SEQ { UTCTime, UTCTime } } } (a v1 layout).
        let validity = |after: &[u8]| {
            let mut v = vec![0x17, 13];
            v.extend_from_slice(b"000101000000Z");
            v.extend_from_slice(&[0x17, after.len() as u8]);
            v.extend_from_slice(after);
            v
        };
        let wrap = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let build = |after: &[u8]| {
            let mut tbs = vec![0x02, 1, 1, 0x30, 0, 0x30, 0];
            tbs.extend(wrap(0x30, &validity(after)));
            wrap(0x30, &wrap(0x30, &tbs))
        };
        assert_eq!(
            validity_not_after(&build(b"500101000000Z")),
            Utc.with_ymd_and_hms(1950, 1, 1, 0, 0, 0).single()
        );
        assert_eq!(
            validity_not_after(&build(b"491231235959Z")),
            Utc.with_ymd_and_hms(2049, 12, 31, 23, 59, 59).single()
        );
        // Not DER's form (no seconds, an offset, a bad date): left to x509-parser.
        for odd in [&b"4912312359Z"[..], b"491231235959+0100", b"491331235959Z", b"49123123595aZ"] {
            assert_eq!(validity_not_after(&build(odd)), None, "{}", String::from_utf8_lossy(odd));
        }
    }

    #[test]
    fn damaged_input_is_none_not_a_panic() {
        let der = cert((2031, 1, 1), (0, 0, 0));
        for n in 0..der.len() {
            let _ = validity_not_after(&der[..n]);
            let _ = not_after_der(&der[..n]);
        }
        assert_eq!(not_after_der(b""), None);
        assert_eq!(not_after_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
