//! Which rooms a client may join: allow and deny patterns where `*` matches any characters and
//! `{sub}` stands for the subject of the client's token. Deny wins over allow.

/// Room rules.
#[derive(Debug, Clone)]
pub struct RoomRules {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl RoomRules {
    pub fn new(allow: Vec<String>, deny: Vec<String>) -> Self {
        RoomRules { allow, deny }
    }

    /// Whether a client whose token has subject `sub` may join `room`. A pattern with `{sub}`
    /// never matches a client without a subject.
    pub fn allows(&self, room: &str, sub: Option<&str>) -> bool {
        let matches = |pattern: &String| match (pattern.contains("{sub}"), sub) {
            (true, None) => false,
            (true, Some(sub)) => glob(&pattern.replace("{sub}", sub), room),
            (false, _) => glob(pattern, room),
        };
        !self.deny.iter().any(matches) && self.allow.iter().any(matches)
    }

    /// The rooms of `requested` the client may join.
    pub fn filter(&self, requested: Vec<String>, sub: Option<&str>) -> Vec<String> {
        requested
            .into_iter()
            .filter(|room| self.allows(room, sub))
            .collect()
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
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
