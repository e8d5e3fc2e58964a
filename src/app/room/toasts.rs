//! The short notes that pop up over the stage (who joined or left, raised hands, messages
//! while the chat is closed), with no browser in it: grouped by kind so a busy meeting shows
//! a few notes and not a stream, each dismissable and gone after a while.

use crate::protocol::{PeerId, UnixMillis};

/// How long a note stays, counted from its latest news.
pub const TOAST_MS: u32 = 6_000;

/// Notes shown at once; the oldest goes when another comes.
pub const MAX_TOASTS: usize = 3;

/// Longest message text a note quotes, in characters.
const QUOTE_CHARS: usize = 80;

/// What a note is about; news of the same kind joins the note already shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToastKind {
    Joined,
    Left,
    Hand,
    /// Messages from one person.
    Message {
        from: PeerId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub kind: ToastKind,
    /// Who, in the order news came (each once).
    pub names: Vec<String>,
    /// For messages: the latest one's text, shortened.
    pub text: Option<String>,
    /// How many pieces of news the note holds (messages count each one).
    pub count: usize,
    pub at: UnixMillis,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toasts {
    shown: Vec<Toast>,
    next_id: u64,
}

impl Toasts {
    pub fn shown(&self) -> &[Toast] {
        &self.shown
    }

    /// Adds news; returns the id of the note that holds it, whose time starts again.
    pub fn push(
        &mut self,
        kind: ToastKind,
        name: &str,
        text: Option<&str>,
        now: UnixMillis,
    ) -> u64 {
        let text = text.map(quote);
        if let Some(at) = self.shown.iter().position(|t| t.kind == kind) {
            let mut toast = self.shown.remove(at);
            if !toast.names.iter().any(|n| n == name) {
                toast.names.push(name.to_string());
            }
            toast.count += 1;
            toast.text = text.or(toast.text);
            toast.at = now;
            let id = toast.id;
            self.shown.push(toast);
            return id;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.shown.push(Toast {
            id,
            kind,
            names: vec![name.to_string()],
            text,
            count: 1,
            at: now,
        });
        if self.shown.len() > MAX_TOASTS {
            self.shown.remove(0);
        }
        id
    }

    /// Note `id`'s time is up, unless news came since (`now` is when the timer fired).
    pub fn expire(&mut self, id: u64, now: UnixMillis) {
        self.shown
            .retain(|t| t.id != id || now.0 < t.at.0 + u64::from(TOAST_MS));
    }

    pub fn dismiss(&mut self, id: u64) {
        self.shown.retain(|t| t.id != id);
    }

    /// The chat opened: its messages are read there.
    pub fn drop_messages(&mut self) {
        self.shown
            .retain(|t| !matches!(t.kind, ToastKind::Message { .. }));
    }
}

fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let mut quoted: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000);

    fn later(ms: u64) -> UnixMillis {
        UnixMillis(T0.0 + ms)
    }

    #[test]
    fn news_of_one_kind_gathers_in_one_note() {
        let mut toasts = Toasts::default();
        let first = toasts.push(ToastKind::Joined, "Ann", None, T0);
        let again = toasts.push(ToastKind::Joined, "Bob", None, later(100));
        assert_eq!(first, again);
        toasts.push(ToastKind::Joined, "Ann", None, later(200));
        let joined = &toasts.shown()[0];
        assert_eq!(joined.names, vec!["Ann", "Bob"]);
        assert_eq!(joined.count, 3);
        toasts.push(ToastKind::Hand, "Cy", None, later(300));
        assert_eq!(toasts.shown().len(), 2);
    }

    #[test]
    fn messages_gather_per_author_with_the_latest_text() {
        let mut toasts = Toasts::default();
        let ann = ToastKind::Message { from: PeerId(1) };
        toasts.push(ann.clone(), "Ann", Some("hi"), T0);
        toasts.push(ann.clone(), "Ann", Some("are you there?"), later(10));
        toasts.push(
            ToastKind::Message { from: PeerId(2) },
            "Bob",
            Some("yes"),
            later(20),
        );
        assert_eq!(toasts.shown().len(), 2);
        assert_eq!(toasts.shown()[0].text.as_deref(), Some("are you there?"));
        assert_eq!(toasts.shown()[0].count, 2);
        let long = "x".repeat(500);
        toasts.push(ann, "Ann", Some(&long), later(30));
        let quoted = toasts.shown().last().unwrap().text.clone().unwrap();
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 1);
        toasts.drop_messages();
        assert!(toasts.shown().is_empty());
    }

    #[test]
    fn at_most_a_few_notes_show_and_each_goes_when_its_time_is_up() {
        let mut toasts = Toasts::default();
        let joined = toasts.push(ToastKind::Joined, "Ann", None, T0);
        toasts.push(ToastKind::Left, "Bob", None, T0);
        toasts.push(ToastKind::Hand, "Cy", None, T0);
        toasts.push(
            ToastKind::Message { from: PeerId(4) },
            "Di",
            Some("hello"),
            T0,
        );
        assert_eq!(toasts.shown().len(), MAX_TOASTS);
        assert!(toasts.shown().iter().all(|t| t.id != joined));

        let hand = toasts.shown()[1].id;
        // News at +5 s keeps the note past the first timer, which fires at +6 s.
        toasts.push(ToastKind::Hand, "Ed", None, later(5_000));
        toasts.expire(hand, later(u64::from(TOAST_MS)));
        assert!(toasts.shown().iter().any(|t| t.id == hand));
        toasts.expire(hand, later(5_000 + u64::from(TOAST_MS)));
        assert!(toasts.shown().iter().all(|t| t.id != hand));

        let left = toasts.shown()[0].id;
        toasts.dismiss(left);
        assert!(toasts.shown().iter().all(|t| t.id != left));
    }
}
