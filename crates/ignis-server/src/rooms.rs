//! Which rooms a client may join: allow and deny patterns where `*` matches any characters and
//! `{sub}` stands for the subject of the client's token. Deny wins over allow.
//!
//! The subject is matched literally: a `*` in a token's `sub` is a plain character, so a token
//! whose subject is `*` cannot turn `user:{sub}` into a pattern matching every user's room.

/// Room rules.
#[derive(Debug, Clone)]
pub(crate) struct RoomRules {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl RoomRules {
    pub(crate) fn new(allow: Vec<String>, deny: Vec<String>) -> Self {
        RoomRules { allow, deny }
    }

    /// Whether a client whose token has subject `sub` may join `room`. A pattern with `{sub}`
    /// never matches a client without a subject (or with an empty one).
    pub(crate) fn allows(&self, room: &str, sub: Option<&str>) -> bool {
        let sub = sub.filter(|s| !s.is_empty());
        let matches = |pattern: &String| match (pattern.contains("{sub}"), sub) {
            (true, None) => false,
            (true, Some(sub)) => matches_with_subject(pattern, sub, room),
            (false, _) => glob(pattern, room),
        };
        !self.deny.iter().any(matches) && self.allow.iter().any(matches)
    }

    /// The rooms of `requested` the client may join.
    pub(crate) fn filter(&self, requested: Vec<String>, sub: Option<&str>) -> Vec<String> {
        requested
            .into_iter()
            .filter(|room| self.allows(room, sub))
            .collect()
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    glob_parts(&parts, text)
}

/// The pattern is split at its own stars before the subject goes in, so the subject's
/// characters (stars included) only ever match themselves.
fn matches_with_subject(pattern: &str, sub: &str, room: &str) -> bool {
    let parts: Vec<String> = pattern
        .split('*')
        .map(|part| part.replace("{sub}", sub))
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    glob_parts(&parts, room)
}

/// Matches `text` against literal `parts` with a wildcard between each two of them.
fn glob_parts(parts: &[&str], text: &str) -> bool {
    let Some((first, parts)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> RoomRules {
        RoomRules::new(
            allow.iter().map(|s| s.to_string()).collect(),
            deny.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn patterns() {
        let r = rules(&["public-*", "user:{sub}", "lobby"], &["public-secret*"]);
        let cases = [
            ("public-chat", Some("alice"), true),
            ("public-secret-club", Some("alice"), false),
            ("user:alice", Some("alice"), true),
            ("user:bob", Some("alice"), false),
            ("user:", None, false),
            ("lobby", None, true),
            ("lobby2", None, false),
            ("private-1", Some("alice"), false),
        ];
        for (room, sub, expected) in cases {
            assert_eq!(r.allows(room, sub), expected, "{room} for {sub:?}");
        }
        let everything = rules(&["*"], &[]);
        assert!(everything.allows("anything", None));
        assert_eq!(
            rules(&["*"], &["private-*"]).filter(vec!["a".into(), "private-x".into()], None),
            vec!["a".to_string()]
        );
    }

    #[test]
    fn the_subject_is_matched_literally() {
        let r = rules(&["user:{sub}", "team-{sub}-*"], &[]);
        // A token whose subject is a wildcard must not reach every user's room.
        assert!(!r.allows("user:victim", Some("*")));
        assert!(r.allows("user:*", Some("*")));
        assert!(!r.allows("user:ab", Some("a*")));
        assert!(r.allows("user:a*", Some("a*")));
        assert!(!r.allows("team-x-1", Some("*")));
        assert!(r.allows("team-*-1", Some("*")));
        assert!(r.allows("team-a-1", Some("a")));
        // An empty subject is no subject.
        assert!(!r.allows("user:", Some("")));
    }

    #[test]
    fn globs() {
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
        assert!(glob("*", ""));
        assert!(glob("ab*", "ab"));
        assert!(!glob("abc", "ab"));
        assert!(glob("*x*", "aaxaa"));
        assert!(!glob("a*a", "a"));
    }
}
