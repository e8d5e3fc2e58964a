//! The list of rooms in use that the home page shows: counts in, a sorted summary out.

use std::collections::HashMap;

use super::names::RoomSlug;
use crate::protocol::RoomSummary;

/// How many rooms the home page lists at most; the rest are still joinable by name.
pub const LISTED_ROOMS: usize = 50;

/// Participant counts of the rooms that have anyone in them.
#[derive(Debug, Default)]
pub struct Directory {
    participants: HashMap<RoomSlug, usize>,
}

impl Directory {
    /// Records a room's new head count; a room with nobody left disappears from the list.
    /// Returns whether the list changed.
    pub fn set_participants(&mut self, room: &RoomSlug, count: usize) -> bool {
        if count == 0 {
            return self.participants.remove(room).is_some();
        }
        self.participants.insert(room.clone(), count) != Some(count)
    }

    pub fn contains(&self, room: &RoomSlug) -> bool {
        self.participants.contains_key(room)
    }

    pub fn room_count(&self) -> usize {
        self.participants.len()
    }

    /// The rooms in use as listed ([`listed`]).
    pub fn summary(&self) -> Vec<RoomSummary> {
        listed(
            self.participants
                .iter()
                .map(|(room, &participants)| RoomSummary {
                    room: room.to_string(),
                    participants,
                })
                .collect(),
        )
    }
}

/// One list from the lists of several nodes (`--redis-url`): a room counted by two nodes
/// at once (it is moving between them) counts once, with the larger head count.
pub fn merge(lists: impl IntoIterator<Item = Vec<RoomSummary>>) -> Vec<RoomSummary> {
    let mut participants: HashMap<String, usize> = HashMap::new();
    for summary in lists.into_iter().flatten() {
        let count = participants.entry(summary.room).or_default();
        *count = (*count).max(summary.participants);
    }
    listed(
        participants
            .into_iter()
            .map(|(room, participants)| RoomSummary { room, participants })
            .collect(),
    )
}

/// The rooms as listed: the busiest first, rooms of the same size alphabetically so the
/// list is stable, at most `LISTED_ROOMS`.
fn listed(mut rooms: Vec<RoomSummary>) -> Vec<RoomSummary> {
    rooms.sort_by(|a, b| {
        b.participants
            .cmp(&a.participants)
            .then_with(|| a.room.cmp(&b.room))
    });
    rooms.truncate(LISTED_ROOMS);
    rooms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(room: &str, participants: usize) -> RoomSummary {
        RoomSummary {
            room: room.into(),
            participants,
        }
    }

    #[test]
    fn lists_of_several_nodes_merge_into_one_sorted_list() {
        let merged = merge([
            vec![listed("b", 2), listed("a", 1)],
            vec![listed("c", 5), listed("b", 3)],
            Vec::new(),
        ]);
        assert_eq!(merged, [listed("c", 5), listed("b", 3), listed("a", 1)]);
        let many = (0..LISTED_ROOMS + 5)
            .map(|i| listed(&format!("r{i}"), 1))
            .collect();
        assert_eq!(merge([many]).len(), LISTED_ROOMS);
    }

    fn slug(s: &str) -> RoomSlug {
        RoomSlug::parse(s).unwrap()
    }

    #[test]
    fn lists_busiest_first_and_drops_empty_rooms() {
        let mut dir = Directory::default();
        assert!(dir.set_participants(&slug("b"), 1));
        assert!(dir.set_participants(&slug("a"), 1));
        assert!(dir.set_participants(&slug("c"), 3));
        let names: Vec<_> = dir.summary().into_iter().map(|r| r.room).collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert!(dir.set_participants(&slug("c"), 0));
        assert!(!dir.contains(&slug("c")));
        assert_eq!(dir.room_count(), 2);
    }

    #[test]
    fn reports_whether_anything_changed() {
        let mut dir = Directory::default();
        assert!(dir.set_participants(&slug("a"), 2));
        assert!(!dir.set_participants(&slug("a"), 2));
        assert!(!dir.set_participants(&slug("zzz"), 0));
    }

    #[test]
    fn the_list_is_capped() {
        let mut dir = Directory::default();
        for i in 0..(LISTED_ROOMS + 10) {
            dir.set_participants(&slug(&format!("r{i}")), 1);
        }
        assert_eq!(dir.summary().len(), LISTED_ROOMS);
    }
}
