//! `${VAR}` and `${VAR:-default}` interpolation in config strings; `$$` is a literal `$`.

/// Replaces references with values from `env`. Returns the names that were missing (no value
/// and no default) as the error.
pub fn interpolate(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(name.to_owned()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if missing.is_empty() { Ok(out) } else { Err(missing) }
}

/// The names of the `${VAR}` references in `input` (`$$` escapes a `$`).
pub fn references(input: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else { break };
            let expr = &body[..end];
            names.push(expr.split_once(":-").map_or(expr, |(n, _)| n));
            rest = &body[end + 1..];
        } else {
            rest = after;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_the_names_not_the_escapes() {
        assert_eq!(references("a ${X} $${Y} ${Z:-d} $$ ${unclosed"), ["X", "Z"]);
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(interpolate("pg://${HOST}/x", &env).unwrap(), "pg://db.local/x");
        assert_eq!(interpolate("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("cost $$5 and $x", &env).unwrap(), "cost $5 and $x");
        assert_eq!(interpolate("no refs", &env).unwrap(), "no refs");
    }

    #[test]
    fn reports_every_missing_variable() {
        assert_eq!(interpolate("${A}-${HOST}-${B}", &env).unwrap_err(), vec!["A".to_owned(), "B".to_owned()]);
    }
}
