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

    /// Breakout room `number` of round `round` of the meeting `parent`. The double hyphen
    /// never parses, so nobody can name (and enter) a breakout room from outside; the store
    /// keeps its chat under this name like any room's.
    pub fn breakout(parent: &RoomSlug, round: &str, number: u8) -> Self {
        let round: String = round
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        RoomSlug(format!("{}--{round}-{number}", parent.0))
    }

    /// Whether this is a breakout room's name (see [`RoomSlug::breakout`]).
    pub fn is_breakout(&self) -> bool {
        self.0.contains("--")
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

/// Accents stacked on one letter at most: enough for any language, not for "Zalgo" text that
/// spills over the lines around it.
pub const MAX_STACKED_MARKS: usize = 3;

/// The server's check of a display name: Unicode compatibility normalisation (NFKC, so
/// `émile` typed precomposed or decomposed, or in full-width letters, is one name), then
/// [`tidy_name`].
pub fn display_name(raw: &str, max_chars: usize) -> Result<String, Refusal> {
    use unicode_normalization::UnicodeNormalization;
    let normalized: String = raw.nfkc().collect();
    tidy_name(&normalized, max_chars)
}

/// Checks and tidies a display name without Unicode tables (the browser's check before
/// sending): surrounding whitespace is dropped, inner runs of whitespace become one space;
/// control, invisible and direction-changing characters and stacks of accents are refused
/// rather than stripped, so that the person sees why.
pub fn tidy_name(raw: &str, max_chars: usize) -> Result<String, Refusal> {
    if raw.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidName,
            "names cannot contain control characters",
        ));
    }
    let chars: Vec<char> = raw.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        let before = index.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(index + 1).copied();
        if is_hidden(c, before, after) {
            return Err(Refusal::new(
                ErrorCode::InvalidName,
                format!(
                    "names cannot contain invisible or direction-changing characters (U+{:04X})",
                    c as u32
                ),
            ));
        }
    }
    let mut stacked = 0;
    for &c in &chars {
        stacked = if is_combining_accent(c) {
            stacked + 1
        } else {
            0
        };
        if stacked > MAX_STACKED_MARKS {
            return Err(Refusal::new(
                ErrorCode::InvalidName,
                format!("at most {MAX_STACKED_MARKS} accents on one letter"),
            ));
        }
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

/// Names are unique per room without regard to case or look-alike letters, so neither "ann"
/// nor "Аnn" (with a Cyrillic А) can pose as "Ann".
pub fn same_name(a: &str, b: &str) -> bool {
    name_key(a) == name_key(b)
}

/// What two names must share to count as the same: their confusables skeleton (Unicode
/// TR39: look-alike characters mapped to one), lower-cased. Computed once per member, so
/// checking a newcomer against a full room compares bytes.
pub fn name_key(name: &str) -> String {
    unicode_security::confusable_detection::skeleton(name)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Characters that show nothing or reorder what follows: zero-width and format characters,
/// fillers that render as blanks, bidirectional controls. The joiners that emoji sequences
/// and some scripts need are allowed where they join: ZWJ between emoji, ZWNJ after a letter
/// of a script that uses it, a variation selector after an emoji.
fn is_hidden(c: char, before: Option<char>, after: Option<char>) -> bool {
    match c {
        '\u{200D}' => !(before.is_some_and(is_emoji) && after.is_some_and(is_emoji)),
        '\u{200C}' => !before.is_some_and(uses_zwnj),
        '\u{FE00}'..='\u{FE0F}' => !before.is_some_and(is_emoji),
        '\u{200B}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180E}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{2800}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}' => true,
        _ => false,
    }
}

fn is_emoji(c: char) -> bool {
    matches!(c, '\u{2600}'..='\u{27BF}' | '\u{2B00}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}')
}

/// Arabic, Persian and the Indic scripts write ZWNJ inside words.
fn uses_zwnj(c: char) -> bool {
    matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{0900}'..='\u{0DFF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

/// The general-purpose combining accents, the ones "Zalgo" text stacks.
fn is_combining_accent(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
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

    #[test]
    fn invisible_reordering_and_stacked_characters_are_refused() {
        let refused = |raw: &str| display_name(raw, 32).unwrap_err().code == ErrorCode::InvalidName;
        for raw in [
            "\u{200B}",
            "\u{3164}",
            "\u{2800}",
            "Ann\u{200B}",
            "An\u{00AD}n",
            "\u{FEFF}Ann",
            "\u{202E}nnA",
            "Ann\u{2066}",
            "A\u{200D}nn",
        ] {
            assert!(refused(raw), "{raw:?} was accepted");
        }
        let zalgo = format!("A{}nn", "\u{0301}".repeat(31));
        assert!(refused(&zalgo));
        assert!(display_name("A\u{0301}\u{0302}\u{0303}nn", 32).is_ok());
    }

    #[test]
    fn names_in_every_script_and_emoji_still_work() {
        for raw in [
            "김민수",
            "محمد",
            "می\u{200C}خواهم",
            "👨\u{200D}👩\u{200D}👧 family",
            "❤\u{FE0F} Ann",
            "Zoë",
            "Łukasz",
        ] {
            assert!(display_name(raw, 32).is_ok(), "{raw:?} was refused");
        }
    }

    #[test]
    fn look_alike_and_differently_encoded_names_count_as_the_same() {
        // NFC and NFD "émile" become one spelling.
        let composed = display_name("\u{00E9}mile", 32).unwrap();
        let decomposed = display_name("e\u{0301}mile", 32).unwrap();
        assert_eq!(composed, decomposed);
        // Full-width letters are folded by NFKC.
        assert_eq!(display_name("Ａｎｎ", 32).unwrap(), "Ann");
        // A Cyrillic А beside a Latin A, and case.
        assert!(same_name("\u{0410}nn", "Ann"));
        assert!(same_name("ANN", "ann"));
        assert!(!same_name("Ann", "Anna"));
        assert!(!same_name("김민수", "김민지"));
    }
}
