//! The meeting password: who must give it, the room's budget of guesses, and setting or
//! clearing it. The core holds only the password's hash and never computes one: hashing and
//! checking (Argon2, slow on purpose) happen off the room's task, and their results come
//! back as inputs ([`Room::password_hashed`], [`JoinRequest::password_matched`]).

use super::{JoinRequest, Room};
use crate::core::{Now, Outcome, Recipients, Refusal};
use crate::protocol::{ErrorCode, PeerId, ServerMsg};

/// The longest meeting password a host may set, in characters.
pub const MAX_PASSWORD_CHARS: usize = 64;

/// The most bytes of password a `join` may carry: four bytes per character at most, so a
/// guess longer than any password that can be set is refused before anyone hashes it.
pub const MAX_PASSWORD_BYTES: usize = MAX_PASSWORD_CHARS * 4;

/// A password a host set, for the caller to hash and hand back with
/// [`Room::password_hashed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordToHash {
    pub by: PeerId,
    pub password: String,
}

impl Room {
    /// Whether this join's password must be checked before [`Room::join`] can decide, and
    /// against which hash. `None` when nothing needs checking: the room has no password, the
    /// request carries none (the join then asks for it), enters as host or resumes, already
    /// matched, or will be refused anyway. A check must first take from the room's guess
    /// budget ([`Room::take_guess`]).
    pub fn password_to_check(&self, request: &JoinRequest) -> Result<Option<String>, Refusal> {
        let Some(hash) = &self.password else {
            return Ok(None);
        };
        let Some(guess) = request.password.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        if guess.len() > MAX_PASSWORD_BYTES {
            return Err(too_long());
        }
        if request.password_matched.as_ref() == Some(hash)
            || self.resumes_a_member(request)
            || self.claims_host(request)
            || self.removed_or_locked(request).is_err()
        {
            return Ok(None);
        }
        Ok(Some(hash.clone()))
    }

    /// Takes one password guess from the room's budget.
    pub fn take_guess(&mut self, now: Now) -> Result<(), Refusal> {
        let limit = self.limits.password_guesses;
        if self.guesses.try_take_many(now.mono, limit.cost()) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::TooManyGuesses,
            format!(
                "too many wrong passwords for this meeting just now; try again in {} seconds",
                limit.every_secs
            ),
        ))
    }

    /// Refuses a newcomer who has not given the meeting's password (checked beforehand).
    pub(super) fn password_gate(&self, request: &JoinRequest) -> Result<(), Refusal> {
        let Some(hash) = &self.password else {
            return Ok(());
        };
        if request.password_matched.as_ref() == Some(hash) {
            return Ok(());
        }
        if request.password.as_deref().is_none_or(str::is_empty) {
            Err(Refusal::new(
                ErrorCode::PasswordRequired,
                "this meeting has a password; type it to join",
            ))
        } else {
            Err(Refusal::new(
                ErrorCode::WrongPassword,
                "that is not the meeting's password",
            ))
        }
    }

    /// A host or co-host sets the password (hashed by the caller first) or clears it.
    pub(super) fn set_password(
        &mut self,
        actor: PeerId,
        password: Option<String>,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Ok(self.change_password(None));
        };
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(too_long());
        }
        if password.chars().any(char::is_control) {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                "a meeting password cannot contain control characters",
            ));
        }
        Ok(Outcome {
            hash_password: Some(PasswordToHash {
                by: actor,
                password,
            }),
            ..Outcome::default()
        })
    }

    /// The hash of the password `by` set. Dropped if `by` no longer moderates (they left or
    /// lost the role while it was hashed).
    pub fn password_hashed(&mut self, by: PeerId, hash: String) -> Outcome {
        let still_moderates = self
            .members
            .iter()
            .any(|m| m.id == by && m.role.moderates());
        let outcome = if still_moderates {
            self.change_password(Some(hash))
        } else {
            Outcome::default()
        };
        self.finish(outcome)
    }

    fn change_password(&mut self, hash: Option<String>) -> Outcome {
        let had = self.password.is_some();
        self.rules.password = hash.is_some();
        self.password = hash;
        if !had && !self.rules.password {
            return Outcome::default();
        }
        // Everyone sees whether there is one; a changed password is news to the hosts too.
        Outcome::deliver(Recipients::Everyone, ServerMsg::Rules { rules: self.rules })
    }
}

fn too_long() -> Refusal {
    Refusal::new(
        ErrorCode::BadMessage,
        format!("a meeting password is at most {MAX_PASSWORD_CHARS} characters"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::RoomSlug;
    use crate::core::room::{Joined, RoomLimits};
    use crate::protocol::{ClientMsg, Role};

    const T0: Now = Now::at(1_000);

    fn room_with_host() -> Room {
        let mut room = Room::new(
            RoomSlug::parse("pw").unwrap(),
            RoomLimits::DEFAULT,
            Vec::new(),
        );
        room.supply_key("key".into());
        join(&mut room, 1, "Ann", None, None).unwrap();
        room
    }

    fn join(
        room: &mut Room,
        id: u64,
        name: &str,
        password: Option<&str>,
        matched: Option<&str>,
    ) -> Result<Joined, Refusal> {
        let request = JoinRequest {
            name: name.into(),
            password: password.map(String::from),
            password_matched: matched.map(String::from),
            ..JoinRequest::default()
        };
        room.join(PeerId(id), request, format!("resume-{id}"), T0)
    }

    fn set(room: &mut Room, by: u64, password: Option<&str>) -> Result<Outcome, Refusal> {
        room.request(
            PeerId(by),
            ClientMsg::SetPassword {
                password: password.map(String::from),
            },
            T0,
        )
    }

    #[test]
    fn a_set_password_is_hashed_outside_then_asked_of_newcomers_only() {
        let mut room = room_with_host();
        join(&mut room, 2, "Bob", None, None).unwrap();
        let asked = set(&mut room, 1, Some("tiger")).unwrap();
        assert_eq!(
            asked.hash_password,
            Some(PasswordToHash {
                by: PeerId(1),
                password: "tiger".into()
            })
        );
        // Nothing changes until the hash comes back.
        assert!(!room.rules().password);
        let told = room.password_hashed(PeerId(1), "HASH".into());
        assert!(room.rules().password);
        assert!(matches!(
            told.deliveries[0].msg,
            ServerMsg::Rules { rules } if rules.password
        ));
        // Bob, already in, stays; Cy must give it.
        assert!(room.is_member(PeerId(2)));
        let refused = join(&mut room, 3, "Cy", None, None).unwrap_err();
        assert_eq!(refused.code, ErrorCode::PasswordRequired);
        let request = JoinRequest {
            name: "Cy".into(),
            password: Some("lion".into()),
            ..JoinRequest::default()
        };
        assert_eq!(
            room.password_to_check(&request).unwrap().as_deref(),
            Some("HASH")
        );
        let refused = join(&mut room, 3, "Cy", Some("lion"), None).unwrap_err();
        assert_eq!(refused.code, ErrorCode::WrongPassword);
        // A match against an older hash does not count.
        let refused = join(&mut room, 3, "Cy", Some("tiger"), Some("OLD")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::WrongPassword);
        join(&mut room, 3, "Cy", Some("tiger"), Some("HASH")).unwrap();
    }

    #[test]
    fn only_moderators_set_it_and_clearing_lets_everyone_in_again() {
        let mut room = room_with_host();
        join(&mut room, 2, "Bob", None, None).unwrap();
        assert_eq!(
            set(&mut room, 2, Some("x")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert_eq!(
            set(&mut room, 1, Some(&long)).unwrap_err().code,
            ErrorCode::BadMessage
        );
        set(&mut room, 1, Some("x")).unwrap();
        room.password_hashed(PeerId(1), "HASH".into());
        set(&mut room, 1, None).unwrap();
        assert!(!room.rules().password);
        join(&mut room, 3, "Cy", None, None).unwrap();
    }

    #[test]
    fn a_hash_for_someone_who_lost_the_role_meanwhile_is_dropped() {
        let mut room = room_with_host();
        join(&mut room, 2, "Bob", None, None).unwrap();
        room.request(
            PeerId(1),
            ClientMsg::SetRole {
                peer: PeerId(2),
                role: Role::Cohost,
            },
            T0,
        )
        .unwrap();
        set(&mut room, 2, Some("x")).unwrap();
        room.request(
            PeerId(1),
            ClientMsg::SetRole {
                peer: PeerId(2),
                role: Role::Member,
            },
            T0,
        )
        .unwrap();
        assert!(room.password_hashed(PeerId(2), "HASH".into()).is_quiet());
        assert!(!room.rules().password);
    }

    #[test]
    fn guesses_come_out_of_the_rooms_budget_and_hosts_and_resumes_need_none() {
        let mut room = room_with_host();
        set(&mut room, 1, Some("x")).unwrap();
        room.password_hashed(PeerId(1), "HASH".into());
        let guess = JoinRequest {
            name: "Eve".into(),
            password: Some("guess".into()),
            ..JoinRequest::default()
        };
        assert!(room.password_to_check(&guess).unwrap().is_some());
        let burst = RoomLimits::DEFAULT.password_guesses.burst;
        for _ in 0..burst {
            room.take_guess(T0).unwrap();
        }
        let refused = room.take_guess(T0).unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyGuesses);
        let every = u64::from(RoomLimits::DEFAULT.password_guesses.every_secs) * 1000;
        assert!(room.take_guess(T0.later(every)).is_ok());
        // The host key opens the meeting without the password.
        let host = JoinRequest {
            name: "Ann again".into(),
            password: Some("wrong".into()),
            host_key: room.host_key.clone(),
            ..JoinRequest::default()
        };
        assert_eq!(room.password_to_check(&host).unwrap(), None);
        let resume = JoinRequest {
            name: "Ann".into(),
            resume: Some("resume-1".into()),
            password: Some("wrong".into()),
            ..JoinRequest::default()
        };
        assert_eq!(room.password_to_check(&resume).unwrap(), None);
    }
}
