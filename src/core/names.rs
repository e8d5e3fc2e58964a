//! Room slugs and display names: validation, normalization and generation, without IO.

use crate::protocol::ErrorCode;
use std::fmt;

use super::Refusal;

/// Longest room slug the server accepts, in characters.
pub const MAX_ROOM_CHARS: usize = 40;

/// A room's name as it appears in `/r/{slug}`: lowercase ASCII letters, digits and single
/// hyphens between them. Kept this narrow so that slugs never need escaping in URLs or logs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomSlug(String);

impl RoomSlug {
    /// Accepts a slug that is already in canonical form.
    pub fn parse(raw: &str) -> Result<Self, Refusal> {
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid_shape = !raw.is_empty()
            && raw.len() <= MAX_ROOM_CHARS
            && !raw.starts_with('-')
            && !raw.ends_with('-')
            && !raw.contains("--");
        if valid_chars && valid_shape {
            Ok(RoomSlug(raw.to_owned()))
        } else {
            Err(Refusal::new(
                ErrorCode::InvalidRoom,
                format!(
                    "room names are 1 to {MAX_ROOM_CHARS} lowercase letters, digits and single hyphens"
                ),
            ))
        }
    }

    /// Turns what a person typed ("Team Standup!") into a slug ("team-standup").
    pub fn normalize(input: &str) -> Result<Self, Refusal> {
        let mut slug = String::with_capacity(input.len().min(MAX_ROOM_CHARS));
        for ch in input.trim().chars().flat_map(char::to_lowercase) {
            if slug.len() == MAX_ROOM_CHARS {
                break;
            }
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                slug.push(ch);
            } else if (ch.is_whitespace() || matches!(ch, '-' | '_' | '.' | '/'))
                && !slug.is_empty()
                && !slug.ends_with('-')
            {
                slug.push('-');
            }
        }
        while slug.ends_with('-') {
            slug.pop();
        }
        Self::parse(&slug)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const ADJECTIVES: [&str; 32] = [
    "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring", "eager",
    "fancy", "gentle", "golden", "happy", "jolly", "kind", "lively", "lucky", "mellow", "merry",
    "nimble", "proud", "quick", "quiet", "rapid", "sunny", "swift", "tidy", "vivid", "warm",
    "witty", "zesty",
];

const ANIMALS: [&str; 32] = [
    "badger", "beaver", "bison", "crane", "dolphin", "eagle", "falcon", "ferret", "gecko", "heron",
    "ibex", "koala", "lemur", "lynx", "marten", "moose", "narwhal", "ocelot", "otter", "owl",
    "panda", "puffin", "quokka", "raven", "robin", "salmon", "seal", "tapir", "tiger", "walrus",
    "wombat", "yak",
];

/// Letters of the unguessable part: digits and lower-case letters without `i`, `l`, `o`
/// and `u`, which are read and typed wrongly (Crockford's base 32).
const SECRET_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A readable slug with an unguessable part, such as `brave-otter-7fk2-9xq4-m3cd-h8rt`: two
/// words people can say, then 80 random bits in four groups, so nobody can find a meeting by
/// trying names. The caller chooses the randomness source (and tests can fix it).
pub fn readable_slug(words: [u32; 2], secret: u128) -> RoomSlug {
    let adjective = ADJECTIVES[words[0] as usize % ADJECTIVES.len()];
    let animal = ANIMALS[words[1] as usize % ANIMALS.len()];
    let mut slug = format!("{adjective}-{animal}");
    for group in 0..4 {
        slug.push('-');
        for position in 0..4 {
            let shift = (group * 4 + position) * 5;
            slug.push(SECRET_ALPHABET[(secret >> shift) as usize & 31] as char);
        }
    }
    RoomSlug(slug)
}

/// Checks and tidies a display name: surrounding whitespace is dropped, inner runs of
/// whitespace become one space, and control characters are refused rather than stripped so
/// that the person sees why their name changed.
pub fn display_name(raw: &str, max_chars: usize) -> Result<String, Refusal> {
    if raw.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidName,
            "names cannot contain control characters",
        ));
    }
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = name.chars().count();
    if chars == 0 {
        return Err(Refusal::new(ErrorCode::InvalidName, "please enter a name"));
    }
    if chars > max_chars {
        return Err(Refusal::new(
            ErrorCode::InvalidName,
            format!("names are at most {max_chars} characters"),
        ));
    }
    Ok(name)
}

/// Names are unique per room without regard to case, so "ann" cannot pose as "Ann".
pub fn same_name(a: &str, b: &str) -> bool {
    name_key(a) == name_key(b)
}

/// What two names must share to count as the same: computed once per member, so checking a
/// newcomer's name against a full room compares bytes instead of folding every name again.
pub fn name_key(name: &str) -> String {
    name.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_slugs_parse_and_others_do_not() {
        assert!(RoomSlug::parse("brave-otter-42").is_ok());
        assert!(RoomSlug::parse("a").is_ok());
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "a b",
            "a_b",
            "ä",
            &"a".repeat(41),
        ] {
            let err = RoomSlug::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRoom, "{bad:?}");
        }
    }

    #[test]
    fn typed_names_normalize_to_slugs() {
        let cases = [
            ("Team Standup!", "team-standup"),
            ("  weekly   sync  ", "weekly-sync"),
            ("Q3_planning/2026", "q3-planning-2026"),
            ("--x--", "x"),
            ("brave-otter-42", "brave-otter-42"),
        ];
        for (typed, slug) in cases {
            assert_eq!(RoomSlug::normalize(typed).unwrap().as_str(), slug);
        }
        assert!(RoomSlug::normalize("!!!").is_err());
        assert!(RoomSlug::normalize("회의").is_err());
        let long = RoomSlug::normalize(&"ab ".repeat(40)).unwrap();
        assert_eq!(long.as_str().len(), MAX_ROOM_CHARS);
        assert!(RoomSlug::parse(long.as_str()).is_ok());
        // A cut that lands on a separator must not leave a trailing hyphen.
        let cut = RoomSlug::normalize(&format!("{} tail", "x".repeat(39))).unwrap();
        assert_eq!(cut.as_str(), "x".repeat(39));
    }

    #[test]
    fn generated_slugs_are_valid_and_vary_with_the_input() {
        let a = readable_slug([0, 0], 0);
        let b = readable_slug([6, 18], 0x1f | (1 << 75));
        assert_eq!(a.as_str(), "amber-badger-0000-0000-0000-0000");
        assert_eq!(b.as_str(), "cosmic-otter-z000-0000-0000-0001");
        for r in [u32::MAX, 12345, 999_999] {
            let slug = readable_slug([r, r / 3], u128::MAX / u128::from(r));
            assert_eq!(RoomSlug::parse(slug.as_str()).unwrap(), slug);
            assert!(slug.as_str().len() <= MAX_ROOM_CHARS);
        }
    }

    #[test]
    fn display_names_are_tidied_and_bounded() {
        assert_eq!(display_name("  Ann   Lee ", 32).unwrap(), "Ann Lee");
        assert_eq!(display_name("김민수", 32).unwrap(), "김민수");
        assert_eq!(
            display_name("   ", 32).unwrap_err().code,
            ErrorCode::InvalidName
        );
        assert_eq!(
            display_name("a\u{7}b", 32).unwrap_err().code,
            ErrorCode::InvalidName
        );
        assert!(display_name(&"é".repeat(32), 32).is_ok());
        assert!(display_name(&"é".repeat(33), 32).is_err());
    }

    #[test]
    fn name_comparison_ignores_case() {
        assert!(same_name("Ann", "aNN"));
        assert!(!same_name("Ann", "Anna"));
    }
}
