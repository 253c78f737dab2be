//! Text from records (an error message, a site name from another client) made safe for a
//! terminal line: control characters — newlines, escape sequences — become spaces.

use std::borrow::Cow;

pub fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(super::printable("a\nb\x1b[2Jc\t"), "a b [2Jc ");
        assert!(matches!(super::printable("plain ä"), std::borrow::Cow::Borrowed("plain ä")));
    }
}
