//! The user interface's words, one catalog per language (English, Korean), and the language
//! choice: the `room_lang` cookie set by the switcher, else the browser's preferred
//! languages, else English. The server renders in the chosen language and marks it on
//! `<html lang>`, which the browser reads back, so hydration always agrees.

use leptos::prelude::*;

use crate::app::room::model::Notice;
use crate::app::room::session::{Alert, Ending};
use crate::media::{LinkState, MediaProblem};
use crate::protocol::{ErrorCode, LeaveReason, Limits, TrackSource};

/// Name of the cookie that keeps a language chosen with the switcher.
pub const LANG_COOKIE: &str = "room_lang";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ko => "한국어",
        }
    }

    /// "ko", "ko-KR", "en-US" and the like.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header (quality order).
    pub fn negotiate(accept_language: &str) -> Lang {
        let mut ranked: Vec<(f32, Lang)> = accept_language
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let lang = Lang::from_tag(pieces.next()?)?;
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                Some((quality, lang))
            })
            .collect();
        // Stable sort keeps the header's order among equal qualities.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map_or(Lang::En, |&(_, lang)| lang)
    }

    /// The language a request asks for: the cookie, else `Accept-Language`.
    pub fn for_request(cookie_header: Option<&str>, accept_language: Option<&str>) -> Lang {
        let from_cookie = cookie_header.and_then(|cookies| {
            cookies.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == LANG_COOKIE)
                    .then(|| Lang::from_tag(value))
                    .flatten()
            })
        });
        from_cookie.unwrap_or_else(|| accept_language.map_or(Lang::En, Lang::negotiate))
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Ko => &KO,
        }
    }
}

/// Every string the interface shows.
pub struct Texts {
    pub tagline: &'static str,
    pub start_meeting: &'static str,
    pub join_by_name: &'static str,
    pub room_placeholder: &'static str,
    pub join: &'static str,
    pub invalid_room_typed: &'static str,
    pub rooms_in_use: &'static str,
    pub no_rooms: &'static str,
    pub people_count: fn(usize) -> String,
    pub page_not_found: &'static str,
    pub back_home: &'static str,
    pub not_a_room: &'static str,
    pub language: &'static str,
    // Pre-join.
    pub ready_to_join: &'static str,
    pub your_name: &'static str,
    pub name_placeholder: &'static str,
    pub joining: &'static str,
    pub join_without_devices: &'static str,
    pub camera_preview: &'static str,
    pub mic_level: &'static str,
    pub camera_is_off: &'static str,
    pub camera: &'static str,
    pub microphone: &'static str,
    pub problem_denied: &'static str,
    pub problem_no_device: &'static str,
    pub problem_unavailable: fn(&str) -> String,
    // Controls.
    pub mute: &'static str,
    pub unmute: &'static str,
    pub mic_on: &'static str,
    pub mic_off: &'static str,
    pub camera_turn_off: &'static str,
    pub camera_turn_on: &'static str,
    pub camera_on: &'static str,
    pub camera_off: &'static str,
    pub share_screen: &'static str,
    pub stop_sharing: &'static str,
    pub raise_hand: &'static str,
    pub lower_hand: &'static str,
    pub react: &'static str,
    pub layout_grid: &'static str,
    pub layout_speaker: &'static str,
    /// Make this person's tile large, for you only.
    pub pin: &'static str,
    pub unpin: &'static str,
    pub shortcuts: &'static str,
    pub devices: &'static str,
    pub leave: &'static str,
    pub call_controls: &'static str,
    // The meeting.
    pub call: &'static str,
    pub you_suffix: &'static str,
    pub link_connecting: &'static str,
    pub link_reconnecting: &'static str,
    pub link_failed: &'static str,
    pub link_unreachable: &'static str,
    pub screen_of: fn(&str) -> String,
    pub speaking: &'static str,
    pub hand_raised: &'static str,
    pub sharing_screen: &'static str,
    pub chat_only: &'static str,
    pub people: &'static str,
    pub try_again: &'static str,
    pub call_full: fn(usize) -> String,
    pub reconnecting: &'static str,
    pub rejoin: &'static str,
    pub home: &'static str,
    pub you_left: &'static str,
    pub connection_lost: &'static str,
    pub signed_in_elsewhere: &'static str,
    pub disconnected: fn(&str) -> String,
    pub could_not_rejoin: fn(&str) -> String,
    // Chat.
    pub chat: &'static str,
    pub message: &'static str,
    pub message_placeholder: &'static str,
    pub send: &'static str,
    pub new_messages: fn(usize) -> String,
    pub not_connected: &'static str,
    pub you_joined: fn(&str, &str) -> String,
    pub reconnected: &'static str,
    pub reconnected_restart: &'static str,
    pub joined: fn(&str) -> String,
    pub left: fn(&str, LeaveReason) -> String,
    // Shortcuts dialog.
    pub shortcuts_title: &'static str,
    pub shortcut_mic: &'static str,
    pub shortcut_camera: &'static str,
    pub shortcut_hand: &'static str,
    pub shortcut_chat: &'static str,
    pub shortcut_leave: &'static str,
    pub shortcut_help: &'static str,
    pub close: &'static str,
    // Refusals the page explains itself.
    pub name_taken: &'static str,
    pub name_invalid: fn(usize) -> String,
    pub room_full: &'static str,
    pub rate_limited: &'static str,
    pub text_too_long: fn(usize) -> String,
    pub empty_text: &'static str,
    pub earlier_hidden: &'static str,
    pub load_earlier: &'static str,
    pub who_can_read: &'static str,
    pub server_busy: &'static str,
    pub hosts: HostTexts,
    pub breakouts: BreakoutTexts,
    pub stage: StageTexts,
}

/// The meeting screen: paging the stage, the control bar's menus and panels, notes.
pub struct StageTexts {
    pub pages: &'static str,
    pub previous_page: &'static str,
    pub next_page: &'static str,
    pub more: &'static str,
    pub hide_self: &'static str,
    pub show_self: &'static str,
    pub reactions: &'static str,
    pub open_chat: &'static str,
    pub close_chat: &'static str,
    pub open_people: &'static str,
    pub close_people: &'static str,
    pub unread: fn(usize) -> String,
    pub mic_settings: &'static str,
    pub camera_settings: &'static str,
    pub noise_suppression: &'static str,
    pub echo_cancellation: &'static str,
    pub mirror_video: &'static str,
    /// "Ann joined" / "Ann and 2 others joined".
    pub toast_joined: fn(&str, usize) -> String,
    pub toast_left: fn(&str, usize) -> String,
    pub toast_hand: fn(&str, usize) -> String,
    /// "Ann" / "Ann · 3 messages": the text follows on its own line.
    pub toast_messages: fn(&str, usize) -> String,
    pub dismiss: &'static str,
    /// "12 / 32": characters typed of those allowed.
    pub name_limit_reached: fn(usize) -> String,
    pub quality_good: &'static str,
    pub quality_fair: &'static str,
    pub quality_poor: &'static str,
    pub record: &'static str,
    pub stop_recording: &'static str,
    pub recording_by: fn(&str) -> String,
    pub you_are_recording: &'static str,
    pub recording_failed: &'static str,
}

/// Breakout rooms: the host's plan and controls, and what everyone is told.
pub struct BreakoutTexts {
    pub title: &'static str,
    pub rooms_count: &'static str,
    pub split: &'static str,
    pub room_name: fn(usize) -> String,
    pub unassigned: &'static str,
    pub move_to: fn(&str) -> String,
    pub minutes: &'static str,
    pub open: &'static str,
    pub visit: &'static str,
    pub here: fn(usize) -> String,
    pub broadcast_placeholder: &'static str,
    pub broadcast: &'static str,
    pub close: &'static str,
    pub you_are_assigned: fn(&str) -> String,
    pub join_room: fn(&str) -> String,
    pub you_are_in: fn(&str) -> String,
    pub back_in_main: &'static str,
    pub return_to_main: &'static str,
    pub closing_in: fn(u64) -> String,
    pub time_left: fn(u64) -> String,
    pub broadcast_from: fn(&str, &str) -> String,
    pub drag_hint: &'static str,
}

/// What hosts see and what their actions tell others.
pub struct HostTexts {
    pub host: &'static str,
    /// Who did something when their name is not known (they already left).
    pub a_host: &'static str,
    pub cohost: &'static str,
    pub host_controls: &'static str,
    pub actions_for: fn(&str) -> String,
    pub turn_off_mic: &'static str,
    pub turn_off_camera: &'static str,
    pub turn_off_screen: &'static str,
    pub allow_unmute: &'static str,
    pub make_cohost: &'static str,
    pub take_cohost: &'static str,
    pub make_host: &'static str,
    pub spotlight: &'static str,
    pub end_spotlight: &'static str,
    pub remove: &'static str,
    pub confirm_remove: fn(&str) -> String,
    pub cancel: &'static str,
    pub mute_all: &'static str,
    pub lock: &'static str,
    pub only_hosts_unmute: &'static str,
    pub end_for_all: &'static str,
    pub confirm_end: &'static str,
    pub removed_people: &'static str,
    pub allow_back: &'static str,
    pub locked_badge: &'static str,
    pub turned_off: fn(&str, TrackSource) -> String,
    pub unmute_allowed: fn(&str) -> String,
    pub blocked: fn(TrackSource) -> String,
    pub you_are_host: &'static str,
    pub host_link: &'static str,
    pub removed_you: fn(&str) -> String,
    pub ended_meeting: fn(&str) -> String,
    pub locked_refusal: &'static str,
    pub removed_refusal: &'static str,
    pub locked_notice: &'static str,
    pub unlocked_notice: &'static str,
    pub new_host: fn(&str) -> String,
    pub waiting_title: &'static str,
    pub waiting_body: &'static str,
    pub waiting_room: &'static str,
    pub waiting_count: fn(usize) -> String,
    pub admit: &'static str,
    pub deny: &'static str,
    pub admit_all: &'static str,
    pub denied_you: fn(&str) -> String,
    pub locked_out: &'static str,
    pub meeting_password: &'static str,
    pub password_is_set: &'static str,
    pub set_password: &'static str,
    pub clear_password: &'static str,
    pub password_required: &'static str,
    pub wrong_password: &'static str,
    pub too_many_guesses: &'static str,
    pub name_from_link: &'static str,
    pub token_required: &'static str,
    pub token_expired: &'static str,
    pub token_not_yet_valid: &'static str,
    pub token_wrong_room: &'static str,
    pub token_invalid: &'static str,
}

impl Texts {
    /// The name of the host who acted, or "a host" when it is not known.
    pub fn host_name<'a>(&'a self, by: &'a str) -> &'a str {
        if by.is_empty() {
            self.hosts.a_host
        } else {
            by
        }
    }

    pub fn link_state(&self, state: LinkState) -> &'static str {
        match state {
            LinkState::Connected => "",
            LinkState::Connecting => self.link_connecting,
            LinkState::Reconnecting => self.link_reconnecting,
            LinkState::Failed => self.link_failed,
            LinkState::Unreachable => self.link_unreachable,
        }
    }

    pub fn problem(&self, problem: &MediaProblem) -> String {
        match problem {
            MediaProblem::PermissionDenied => self.problem_denied.to_string(),
            MediaProblem::NoDevice => self.problem_no_device.to_string(),
            MediaProblem::Unavailable(detail) => (self.problem_unavailable)(detail),
        }
    }

    /// A chat notice in this language.
    pub fn notice(&self, notice: &Notice) -> String {
        match notice {
            Notice::YouJoined { room, name } => (self.you_joined)(room, name),
            Notice::Reconnected => self.reconnected.to_string(),
            Notice::ReconnectedAfterRestart => self.reconnected_restart.to_string(),
            Notice::Joined { name } => (self.joined)(name),
            Notice::Left { name, reason } => (self.left)(name, *reason),
            Notice::Locked => self.hosts.locked_notice.to_string(),
            Notice::Unlocked => self.hosts.unlocked_notice.to_string(),
            Notice::NewHost { name } => (self.hosts.new_host)(name),
            Notice::Moved {
                breakout: Some(name),
            } => (self.breakouts.you_are_in)(name),
            Notice::Moved { breakout: None } => self.breakouts.back_in_main.to_string(),
            Notice::Broadcast { name, text } => (self.breakouts.broadcast_from)(name, text),
        }
    }

    /// The alert shown next to the controls.
    pub fn alert(&self, alert: &Alert, limits: Limits) -> String {
        match alert {
            Alert::Refused(refusal) => self.refusal(refusal.code, &refusal.message, limits),
            Alert::NotConnected => self.not_connected.to_string(),
            Alert::ConnectionLost => self.connection_lost.to_string(),
            Alert::HostBlocked(source) => (self.hosts.blocked)(*source),
        }
    }

    /// Why the meeting ended for this page.
    pub fn ending(&self, ending: &Ending, limits: Limits) -> String {
        match ending {
            Ending::YouLeft => self.you_left.to_string(),
            Ending::ConnectionLost => self.connection_lost.to_string(),
            Ending::SignedInElsewhere => self.signed_in_elsewhere.to_string(),
            Ending::Disconnected(reason) => (self.disconnected)(reason),
            Ending::CouldNotRejoin(refusal) => {
                (self.could_not_rejoin)(&self.refusal(refusal.code, &refusal.message, limits))
            }
            Ending::Removed(by) => (self.hosts.removed_you)(self.host_name(by)),
            Ending::MeetingEnded(by) => (self.hosts.ended_meeting)(by),
            Ending::Denied(by) => (self.hosts.denied_you)(self.host_name(by)),
            Ending::LockedOut => self.hosts.locked_out.to_string(),
        }
    }

    /// A refusal from the server in this language, where the page knows what it means;
    /// otherwise the server's own sentence.
    pub fn refusal(&self, code: ErrorCode, server_message: &str, limits: Limits) -> String {
        match code {
            ErrorCode::NameTaken => self.name_taken.to_string(),
            ErrorCode::InvalidName => (self.name_invalid)(limits.max_name_chars),
            ErrorCode::RoomFull => self.room_full.to_string(),
            ErrorCode::RateLimited => self.rate_limited.to_string(),
            ErrorCode::EmptyText => self.empty_text.to_string(),
            ErrorCode::TextTooLong => (self.text_too_long)(limits.max_chat_chars),
            ErrorCode::CallFull => (self.call_full)(limits.max_call_members),
            ErrorCode::TooManyConnections | ErrorCode::TooManyRooms | ErrorCode::Unavailable => {
                self.server_busy.to_string()
            }
            ErrorCode::Locked => self.hosts.locked_refusal.to_string(),
            ErrorCode::Removed => self.hosts.removed_refusal.to_string(),
            ErrorCode::PasswordRequired => self.hosts.password_required.to_string(),
            ErrorCode::WrongPassword => self.hosts.wrong_password.to_string(),
            ErrorCode::TooManyGuesses => self.hosts.too_many_guesses.to_string(),
            ErrorCode::TokenRequired => self.hosts.token_required.to_string(),
            ErrorCode::TokenExpired => self.hosts.token_expired.to_string(),
            ErrorCode::TokenNotYetValid => self.hosts.token_not_yet_valid.to_string(),
            ErrorCode::TokenWrongRoom => self.hosts.token_wrong_room.to_string(),
            // The server's sentence names the fault an integrator must fix.
            ErrorCode::TokenInvalid | ErrorCode::TokenAlgorithm | ErrorCode::TokenClaims => {
                format!("{} ({server_message})", self.hosts.token_invalid)
            }
            _ => server_message.to_string(),
        }
    }
}

pub static EN: Texts = Texts {
    tagline: "Video meetings you run yourself. Open a link, pick a name, talk.",
    start_meeting: "Start a new meeting",
    join_by_name: "Or join a meeting by name",
    room_placeholder: "e.g. team-standup",
    join: "Join",
    invalid_room_typed: "Room names need at least one letter or digit (a–z, 0–9).",
    rooms_in_use: "Rooms in use",
    no_rooms: "No meetings right now. Start one!",
    people_count: |n| {
        if n == 1 {
            "1 person".to_string()
        } else {
            format!("{n} people")
        }
    },
    page_not_found: "Page not found",
    back_home: "Back to Room",
    not_a_room: "That is not a room name",
    language: "Language",
    ready_to_join: "Ready to join?",
    your_name: "Your name",
    name_placeholder: "How others will see you",
    joining: "Joining…",
    join_without_devices: "Join without camera and mic",
    camera_preview: "Your camera preview",
    mic_level: "Microphone level",
    camera_is_off: "Camera is off",
    camera: "Camera",
    microphone: "Microphone",
    problem_denied: "Camera and microphone access is blocked. Allow it in your browser's site \
        settings and reload, or join without them.",
    problem_no_device: "No camera or microphone was found. You can still join to listen and chat.",
    problem_unavailable: |detail| {
        format!(
            "The camera or microphone could not be started ({detail}). Close other apps using \
             it and try again, or join without them."
        )
    },
    mute: "Mute microphone",
    unmute: "Unmute microphone",
    mic_on: "Mic on",
    mic_off: "Mic off",
    camera_turn_off: "Turn camera off",
    camera_turn_on: "Turn camera on",
    camera_on: "Camera on",
    camera_off: "Camera off",
    share_screen: "Share screen",
    stop_sharing: "Stop sharing",
    raise_hand: "Raise hand",
    lower_hand: "Lower hand",
    react: "Reactions",
    layout_grid: "Grid layout",
    layout_speaker: "Speaker layout",
    pin: "Pin",
    unpin: "Unpin",
    shortcuts: "Keyboard shortcuts",
    devices: "Devices",
    leave: "Leave",
    call_controls: "Call controls",
    call: "Call",
    you_suffix: " (you)",
    link_connecting: "connecting…",
    link_reconnecting: "reconnecting…",
    link_failed: "connection failed",
    link_unreachable: "can't connect: your networks block a direct call",
    screen_of: |name| format!("{name}'s screen"),
    speaking: "speaking",
    hand_raised: "hand raised",
    sharing_screen: "sharing screen",
    chat_only: "chat only",
    people: "People",
    try_again: "Try again",
    call_full: |n| format!("The call is full ({n} people). You can still chat."),
    reconnecting: "Reconnecting…",
    rejoin: "Rejoin",
    home: "Home",
    you_left: "You left the meeting.",
    connection_lost: "The connection to the server was lost.",
    signed_in_elsewhere: "You continued this meeting in another tab or window.",
    disconnected: |reason| format!("Disconnected: {reason}."),
    could_not_rejoin: |why| format!("Could not rejoin after reconnecting: {why}"),
    chat: "Chat",
    message: "Message",
    message_placeholder: "Write a message, Enter to send",
    send: "Send",
    new_messages: |n| format!("{n} new ↓"),
    not_connected: "Not connected; the message was not sent.",
    you_joined: |room, name| format!("You joined {room} as {name}"),
    reconnected: "Reconnected",
    reconnected_restart: "Reconnected (the server restarted)",
    joined: |name| format!("{name} joined"),
    left: |name, reason| match reason {
        LeaveReason::Left => format!("{name} left"),
        LeaveReason::TooSlow => format!("{name} lost the connection"),
        LeaveReason::ServerShutdown => format!("{name} was disconnected: the server restarted"),
        LeaveReason::Removed => format!("{name} was removed by a host"),
        LeaveReason::MeetingEnded => format!("{name} left: the meeting ended"),
    },
    shortcuts_title: "Keyboard shortcuts",
    shortcut_mic: "Mute or unmute the microphone",
    shortcut_camera: "Turn the camera on or off",
    shortcut_hand: "Raise or lower your hand",
    shortcut_chat: "Open the chat and write",
    shortcut_leave: "Leave the meeting",
    shortcut_help: "Show this list",
    close: "Close",
    name_taken: "Someone in this room already uses that name. Pick another one.",
    name_invalid: |n| format!("Names are 1 to {n} characters, without control characters."),
    room_full: "This room is full. Try again later.",
    rate_limited: "Slow down a little: too many messages at once.",
    text_too_long: |n| format!("Messages are at most {n} characters."),
    empty_text: "The message is empty.",
    earlier_hidden: "Earlier messages are not shown.",
    load_earlier: "Show earlier messages",
    who_can_read: "Anyone with this room's link can join it and read its chat, earlier meetings' messages included. Share the link only with the people you meet.",
    server_busy: "The server is busy. Try again in a moment.",
    stage: StageTexts {
        pages: "Pages of video tiles",
        previous_page: "Previous page",
        next_page: "Next page",
        more: "More options",
        hide_self: "Hide my video tile",
        show_self: "Show my video tile",
        reactions: "Reactions",
        open_chat: "Open chat",
        close_chat: "Close chat",
        open_people: "Show people",
        close_people: "Hide people",
        unread: |n| if n == 1 { "1 unread message".into() } else { format!("{n} unread messages") },
        mic_settings: "Microphone settings",
        camera_settings: "Camera settings",
        noise_suppression: "Noise suppression",
        echo_cancellation: "Echo cancellation",
        mirror_video: "Mirror my video",
        toast_joined: |name, others| match others {
            0 => format!("{name} joined"),
            1 => format!("{name} and 1 other joined"),
            n => format!("{name} and {n} others joined"),
        },
        toast_left: |name, others| match others {
            0 => format!("{name} left"),
            1 => format!("{name} and 1 other left"),
            n => format!("{name} and {n} others left"),
        },
        toast_hand: |name, others| match others {
            0 => format!("{name} raised a hand"),
            1 => format!("{name} and 1 other raised hands"),
            n => format!("{name} and {n} others raised hands"),
        },
        toast_messages: |name, count| {
            if count == 1 { name.to_string() } else { format!("{name} · {count} messages") }
        },
        dismiss: "Dismiss",
        name_limit_reached: |max| format!("Names can be at most {max} characters"),
        quality_good: "Good connection",
        quality_fair: "Fair connection",
        quality_poor: "Poor connection",
        record: "Record",
        stop_recording: "Stop recording",
        recording_by: |name| format!("{name} is recording"),
        you_are_recording: "You are recording",
        recording_failed: "Recording could not start in this browser",
    },
    hosts: HostTexts {
        host: "Host",
        a_host: "A host",
        cohost: "Co-host",
        host_controls: "Host controls",
        actions_for: |name| format!("Host actions for {name}"),
        turn_off_mic: "Mute",
        turn_off_camera: "Stop camera",
        turn_off_screen: "Stop screen share",
        allow_unmute: "Let them unmute",
        make_cohost: "Make co-host",
        take_cohost: "Remove co-host role",
        make_host: "Make host",
        spotlight: "Spotlight for everyone",
        end_spotlight: "End spotlight",
        remove: "Remove from meeting",
        confirm_remove: |name| {
            format!("Remove {name}? They cannot come back unless a host lets them.")
        },
        cancel: "Cancel",
        mute_all: "Mute everyone",
        lock: "Lock meeting",
        only_hosts_unmute: "Only hosts can unmute",
        end_for_all: "End meeting for all",
        confirm_end: "End the meeting for everyone?",
        removed_people: "Removed",
        allow_back: "Let back in",
        locked_badge: "Locked",
        turned_off: |by, source| {
            match source {
                TrackSource::Microphone => format!("{by} muted your microphone"),
                TrackSource::Camera => format!("{by} turned off your camera"),
                TrackSource::Screen => format!("{by} stopped your screen share"),
            }
        },
        unmute_allowed: |by| {
            format!("{by} lets you turn your microphone and camera on again")
        },
        blocked: |source| {
            let what = match source {
                TrackSource::Microphone => "your microphone",
                TrackSource::Camera => "your camera",
                TrackSource::Screen => "screen sharing",
            };
            format!("A host turned off {what}. Only a host can let you turn it on again.")
        },
        you_are_host: "You are the host. Keep this host link to come back as host later:",
        host_link: "Host link",
        removed_you: |by| {
            format!("{by} removed you from this meeting. You cannot join it again unless a host lets you back in.")
        },
        ended_meeting: |by| {
            if by.is_empty() {
                "The meeting ended.".to_string()
            } else {
                format!("{by} ended the meeting for everyone.")
            }
        },
        locked_refusal: "The host locked this meeting. Nobody new can join right now.",
        removed_refusal: "A host removed you from this meeting. You can come back only if a host lets you.",
        locked_notice: "The meeting is locked: nobody new can join",
        unlocked_notice: "The meeting is unlocked",
        new_host: |name| format!("{name} is now the host"),
        waiting_title: "Waiting for a host to let you in…",
        waiting_body: "This meeting has a waiting room. You will join as soon as a host lets you in.",
        waiting_room: "Waiting room",
        waiting_count: |n| {
            if n == 1 {
                "1 person waiting".to_string()
            } else {
                format!("{n} people waiting")
            }
        },
        admit: "Admit",
        deny: "Deny",
        admit_all: "Admit all",
        denied_you: |by| {
            format!("{by} did not let you in to this meeting.")
        },
        locked_out: "The host locked the meeting while you were waiting. Nobody new can join now.",
        meeting_password: "Meeting password",
        password_is_set: "A password is set. New password:",
        set_password: "Set password",
        clear_password: "Remove password",
        password_required: "This meeting has a password. Type it to join.",
        wrong_password: "That is not the meeting's password. Check it and try again.",
        too_many_guesses: "Too many wrong passwords just now. Wait a minute, then try again.",
        name_from_link: "Your name comes from your invitation link.",
        token_required: "This server admits only people with an invitation link. Ask the organiser for yours.",
        token_expired: "Your invitation link has expired. Ask the organiser for a new one.",
        token_not_yet_valid: "Your invitation link is not valid yet. Try again when the meeting starts.",
        token_wrong_room: "Your invitation link is for another meeting.",
        token_invalid: "Your invitation link is not valid on this server.",
    },
    breakouts: BreakoutTexts {
        title: "Breakout rooms",
        rooms_count: "Rooms",
        split: "Split automatically",
        room_name: |n| format!("Room {n}"),
        unassigned: "Not assigned",
        move_to: |name| format!("Room for {name}"),
        minutes: "Close after (minutes; 0 for no timer)",
        open: "Open rooms",
        visit: "Visit",
        here: |n| if n == 1 { "1 here".to_string() } else { format!("{n} here") },
        broadcast_placeholder: "Message to every room",
        broadcast: "Send to all rooms",
        close: "Close rooms",
        you_are_assigned: |room| format!("You are assigned to {room}."),
        join_room: |room| format!("Join {room}"),
        you_are_in: |room| format!("You are in {room}."),
        back_in_main: "You are back in the main room.",
        return_to_main: "Return to main room",
        closing_in: |secs| format!("Breakout rooms close in {secs} s: everyone returns to the main room."),
        time_left: |secs| format!("Time left: {}:{:02}", secs / 60, secs % 60),
        broadcast_from: |name, text| format!("{name} to all rooms: {text}"),
        drag_hint: "Drag names between rooms, or pick a room for each person.",
    },
};

pub static KO: Texts = Texts {
    tagline: "직접 운영하는 화상 회의. 링크를 열고, 이름을 정하고, 대화하세요.",
    start_meeting: "새 회의 시작",
    join_by_name: "또는 이름으로 회의 참여",
    room_placeholder: "예: team-standup",
    join: "참여",
    invalid_room_typed: "회의 이름에는 영문자나 숫자(a–z, 0–9)가 하나 이상 있어야 합니다.",
    rooms_in_use: "진행 중인 회의",
    no_rooms: "지금은 진행 중인 회의가 없습니다. 새로 시작해 보세요!",
    people_count: |n| format!("{n}명"),
    page_not_found: "페이지를 찾을 수 없습니다",
    back_home: "Room 홈으로",
    not_a_room: "올바른 회의 이름이 아닙니다",
    language: "언어",
    ready_to_join: "참여할 준비가 되셨나요?",
    your_name: "이름",
    name_placeholder: "다른 사람에게 보일 이름",
    joining: "참여하는 중…",
    join_without_devices: "카메라와 마이크 없이 참여",
    camera_preview: "내 카메라 미리보기",
    mic_level: "마이크 음량",
    camera_is_off: "카메라가 꺼져 있습니다",
    camera: "카메라",
    microphone: "마이크",
    problem_denied:
        "카메라와 마이크 사용이 차단되어 있습니다. 브라우저의 사이트 설정에서 허용한 뒤 \
        새로고침하거나, 없이 참여하세요.",
    problem_no_device: "카메라나 마이크를 찾을 수 없습니다. 듣기와 채팅으로 참여할 수 있습니다.",
    problem_unavailable: |detail| {
        format!(
            "카메라나 마이크를 시작할 수 없습니다({detail}). 사용 중인 다른 앱을 닫고 다시 \
             시도하거나, 없이 참여하세요."
        )
    },
    mute: "마이크 끄기",
    unmute: "마이크 켜기",
    mic_on: "마이크 켜짐",
    mic_off: "마이크 꺼짐",
    camera_turn_off: "카메라 끄기",
    camera_turn_on: "카메라 켜기",
    camera_on: "카메라 켜짐",
    camera_off: "카메라 꺼짐",
    share_screen: "화면 공유",
    stop_sharing: "공유 중지",
    raise_hand: "손 들기",
    lower_hand: "손 내리기",
    react: "반응",
    layout_grid: "격자 보기",
    layout_speaker: "발표자 보기",
    pin: "고정",
    unpin: "고정 해제",
    shortcuts: "단축키",
    devices: "장치",
    leave: "나가기",
    call_controls: "통화 제어",
    call: "통화",
    you_suffix: " (나)",
    link_connecting: "연결 중…",
    link_reconnecting: "다시 연결 중…",
    link_failed: "연결 실패",
    link_unreachable: "연결할 수 없음: 네트워크가 직접 통화를 막고 있습니다",
    screen_of: |name| format!("{name}님의 화면"),
    speaking: "말하는 중",
    hand_raised: "손 듦",
    sharing_screen: "화면 공유 중",
    chat_only: "채팅만",
    people: "참가자",
    try_again: "다시 시도",
    call_full: |n| format!("통화 인원이 가득 찼습니다({n}명). 채팅은 계속할 수 있습니다."),
    reconnecting: "다시 연결하는 중…",
    rejoin: "다시 참여",
    home: "홈",
    you_left: "회의에서 나갔습니다.",
    connection_lost: "서버와의 연결이 끊어졌습니다.",
    signed_in_elsewhere: "다른 탭이나 창에서 이 회의를 이어가고 있습니다.",
    disconnected: |reason| format!("연결이 끊어졌습니다: {reason}."),
    could_not_rejoin: |why| format!("다시 연결한 뒤 참여하지 못했습니다: {why}"),
    chat: "채팅",
    message: "메시지",
    message_placeholder: "메시지를 입력하고 Enter로 보내기",
    send: "보내기",
    new_messages: |n| format!("새 메시지 {n}개 ↓"),
    not_connected: "연결되어 있지 않아 메시지를 보내지 못했습니다.",
    you_joined: |room, name| format!("{name}(으)로 {room}에 참여했습니다"),
    reconnected: "다시 연결되었습니다",
    reconnected_restart: "다시 연결되었습니다(서버가 다시 시작됨)",
    joined: |name| format!("{name}님이 참여했습니다"),
    left: |name, reason| match reason {
        LeaveReason::Left => format!("{name}님이 나갔습니다"),
        LeaveReason::TooSlow => format!("{name}님의 연결이 끊어졌습니다"),
        LeaveReason::ServerShutdown => format!("{name}님의 연결이 끊어졌습니다: 서버 재시작"),
        LeaveReason::Removed => format!("호스트가 {name}님을 내보냈습니다"),
        LeaveReason::MeetingEnded => format!("{name}님이 나갔습니다: 회의가 끝났습니다"),
    },
    shortcuts_title: "단축키",
    shortcut_mic: "마이크 켜기/끄기",
    shortcut_camera: "카메라 켜기/끄기",
    shortcut_hand: "손 들기/내리기",
    shortcut_chat: "채팅 열고 입력하기",
    shortcut_leave: "회의에서 나가기",
    shortcut_help: "이 목록 보기",
    close: "닫기",
    name_taken: "이 회의에 같은 이름을 쓰는 사람이 있습니다. 다른 이름을 고르세요.",
    name_invalid: |n| format!("이름은 1자에서 {n}자 사이여야 하며 제어 문자를 쓸 수 없습니다."),
    room_full: "이 회의는 가득 찼습니다. 나중에 다시 시도하세요.",
    rate_limited: "조금 천천히 보내 주세요. 한 번에 너무 많은 메시지를 보냈습니다.",
    text_too_long: |n| format!("메시지는 {n}자까지 보낼 수 있습니다."),
    empty_text: "메시지가 비어 있습니다.",
    earlier_hidden: "이전 메시지는 표시되지 않습니다.",
    load_earlier: "이전 메시지 보기",
    who_can_read: "이 방의 링크가 있는 사람은 누구나 들어와 이전 회의의 메시지를 포함한 채팅을 읽을 수 있습니다. 함께 회의할 사람에게만 링크를 공유하세요.",
    server_busy: "서버가 바쁩니다. 잠시 후 다시 시도하세요.",
    stage: StageTexts {
        pages: "영상 타일 페이지",
        previous_page: "이전 페이지",
        next_page: "다음 페이지",
        more: "옵션 더 보기",
        hide_self: "내 영상 타일 숨기기",
        show_self: "내 영상 타일 보이기",
        reactions: "반응",
        open_chat: "채팅 열기",
        close_chat: "채팅 닫기",
        open_people: "참여자 보기",
        close_people: "참여자 숨기기",
        unread: |n| format!("읽지 않은 메시지 {n}개"),
        mic_settings: "마이크 설정",
        camera_settings: "카메라 설정",
        noise_suppression: "소음 억제",
        echo_cancellation: "에코 제거",
        mirror_video: "내 영상 좌우 반전",
        toast_joined: |name, others| match others {
            0 => format!("{name} 님이 참여했습니다"),
            n => format!("{name} 님 외 {n}명이 참여했습니다"),
        },
        toast_left: |name, others| match others {
            0 => format!("{name} 님이 나갔습니다"),
            n => format!("{name} 님 외 {n}명이 나갔습니다"),
        },
        toast_hand: |name, others| match others {
            0 => format!("{name} 님이 손을 들었습니다"),
            n => format!("{name} 님 외 {n}명이 손을 들었습니다"),
        },
        toast_messages: |name, count| {
            if count == 1 { name.to_string() } else { format!("{name} · 메시지 {count}개") }
        },
        dismiss: "닫기",
        name_limit_reached: |max| format!("이름은 최대 {max}자까지 입력할 수 있습니다"),
        quality_good: "연결 좋음",
        quality_fair: "연결 보통",
        quality_poor: "연결 나쁨",
        record: "녹화",
        stop_recording: "녹화 중지",
        recording_by: |name| format!("{name} 님이 녹화 중입니다"),
        you_are_recording: "녹화 중입니다",
        recording_failed: "이 브라우저에서는 녹화를 시작할 수 없습니다",
    },
    hosts: HostTexts {
        host: "호스트",
        a_host: "호스트",
        cohost: "공동 호스트",
        host_controls: "호스트 도구",
        actions_for: |name| format!("{name}님에 대한 호스트 작업"),
        turn_off_mic: "음소거",
        turn_off_camera: "카메라 끄기",
        turn_off_screen: "화면 공유 중지",
        allow_unmute: "다시 켜도록 허용",
        make_cohost: "공동 호스트로 지정",
        take_cohost: "공동 호스트 해제",
        make_host: "호스트로 지정",
        spotlight: "모두에게 크게 보이기",
        end_spotlight: "크게 보이기 끝내기",
        remove: "회의에서 내보내기",
        confirm_remove: |name| {
            format!("{name}님을 내보낼까요? 호스트가 허용하기 전에는 다시 들어올 수 없습니다.")
        },
        cancel: "취소",
        mute_all: "모두 음소거",
        lock: "회의 잠그기",
        only_hosts_unmute: "호스트만 음소거 해제 가능",
        end_for_all: "모두에게 회의 종료",
        confirm_end: "모두에게 회의를 끝낼까요?",
        removed_people: "내보낸 사람",
        allow_back: "다시 들어오도록 허용",
        locked_badge: "잠김",
        turned_off: |by, source| {
            match source {
                TrackSource::Microphone => format!("{by}님이 내 마이크를 음소거했습니다"),
                TrackSource::Camera => format!("{by}님이 내 카메라를 껐습니다"),
                TrackSource::Screen => format!("{by}님이 내 화면 공유를 중지했습니다"),
            }
        },
        unmute_allowed: |by| {
            format!("{by}님이 마이크와 카메라를 다시 켤 수 있게 허용했습니다")
        },
        blocked: |source| {
            let what = match source {
                TrackSource::Microphone => "마이크",
                TrackSource::Camera => "카메라",
                TrackSource::Screen => "화면 공유",
            };
            format!("호스트가 {what}를 껐습니다. 호스트가 허용해야 다시 켤 수 있습니다.")
        },
        you_are_host: "내가 호스트입니다. 나중에 호스트로 돌아오려면 이 호스트 링크를 보관하세요:",
        host_link: "호스트 링크",
        removed_you: |by| {
            format!("{by}님이 나를 회의에서 내보냈습니다. 호스트가 허용하기 전에는 다시 참여할 수 없습니다.")
        },
        ended_meeting: |by| {
            if by.is_empty() {
                "회의가 끝났습니다.".to_string()
            } else {
                format!("{by}님이 모두에게 회의를 종료했습니다.")
            }
        },
        locked_refusal: "호스트가 회의를 잠갔습니다. 지금은 새로 참여할 수 없습니다.",
        removed_refusal: "호스트가 나를 이 회의에서 내보냈습니다. 호스트가 허용해야 다시 들어올 수 있습니다.",
        locked_notice: "회의가 잠겼습니다: 새로 참여할 수 없습니다",
        unlocked_notice: "회의 잠금이 풀렸습니다",
        new_host: |name| format!("이제 {name}님이 호스트입니다"),
        waiting_title: "호스트가 입장을 허용할 때까지 기다리는 중…",
        waiting_body: "이 회의에는 대기실이 있습니다. 호스트가 허용하면 바로 참여합니다.",
        waiting_room: "대기실",
        waiting_count: |n| format!("{n}명 대기 중"),
        admit: "입장 허용",
        deny: "거절",
        admit_all: "모두 입장 허용",
        denied_you: |by| {
            format!("{by}님이 이 회의에 입장을 허용하지 않았습니다.")
        },
        locked_out: "기다리는 동안 호스트가 회의를 잠갔습니다. 지금은 새로 참여할 수 없습니다.",
        meeting_password: "회의 비밀번호",
        password_is_set: "비밀번호가 설정되어 있습니다. 새 비밀번호:",
        set_password: "비밀번호 설정",
        clear_password: "비밀번호 해제",
        password_required: "이 회의에는 비밀번호가 있습니다. 비밀번호를 입력해야 참여할 수 있습니다.",
        wrong_password: "회의 비밀번호가 아닙니다. 확인한 뒤 다시 시도하세요.",
        too_many_guesses: "잘못된 비밀번호를 너무 많이 입력했습니다. 잠시 후 다시 시도하세요.",
        name_from_link: "이름은 초대 링크에 정해져 있습니다.",
        token_required: "이 서버는 초대 링크가 있는 사람만 들어올 수 있습니다. 주최자에게 링크를 요청하세요.",
        token_expired: "초대 링크가 만료되었습니다. 주최자에게 새 링크를 요청하세요.",
        token_not_yet_valid: "초대 링크가 아직 유효하지 않습니다. 회의가 시작되면 다시 시도하세요.",
        token_wrong_room: "이 초대 링크는 다른 회의용입니다.",
        token_invalid: "초대 링크가 이 서버에서 유효하지 않습니다.",
    },
    breakouts: BreakoutTexts {
        title: "소회의실",
        rooms_count: "회의실 수",
        split: "자동으로 나누기",
        room_name: |n| format!("회의실 {n}"),
        unassigned: "배정 안 됨",
        move_to: |name| format!("{name}의 회의실"),
        minutes: "자동 종료(분, 0은 타이머 없음)",
        open: "회의실 열기",
        visit: "방문",
        here: |n| format!("{n}명 참여 중"),
        broadcast_placeholder: "모든 회의실에 보낼 메시지",
        broadcast: "모든 회의실에 보내기",
        close: "회의실 닫기",
        you_are_assigned: |room| format!("{room}에 배정되었습니다."),
        join_room: |room| format!("{room} 참여"),
        you_are_in: |room| format!("{room}에 있습니다."),
        back_in_main: "메인 회의실로 돌아왔습니다.",
        return_to_main: "메인 회의실로 돌아가기",
        closing_in: |secs| format!("소회의실이 {secs}초 후에 닫힙니다. 모두 메인 회의실로 돌아갑니다."),
        time_left: |secs| format!("남은 시간: {}:{:02}", secs / 60, secs % 60),
        broadcast_from: |name, text| format!("{name}님이 모든 회의실에: {text}"),
        drag_hint: "이름을 끌어 회의실을 옮기거나 사람마다 회의실을 고르세요.",
    },
};

/// The page's language, shared through context.
#[derive(Clone, Copy)]
pub struct I18n {
    pub lang: RwSignal<Lang>,
}

impl I18n {
    /// The current catalog; reading it subscribes the caller to language changes.
    pub fn t(self) -> &'static Texts {
        self.lang.get().texts()
    }
}

pub fn provide_i18n(initial: Lang) -> I18n {
    let i18n = I18n {
        lang: RwSignal::new(initial),
    };
    provide_context(i18n);
    i18n
}

pub fn use_i18n() -> I18n {
    use_context::<I18n>().unwrap_or_else(|| provide_i18n(Lang::En))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::room::RoomLimits;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::negotiate("ko-KR,ko;q=0.9,en-US;q=0.8"), Lang::Ko);
        assert_eq!(
            Lang::negotiate("fr-FR,fr;q=0.9,ko;q=0.8,en;q=0.7"),
            Lang::Ko
        );
        assert_eq!(Lang::negotiate("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::negotiate("de;q=0.5,en;q=0.4,ko;q=0.9"), Lang::Ko);
        assert_eq!(Lang::negotiate("fr"), Lang::En);
        assert_eq!(Lang::negotiate(""), Lang::En);
    }

    #[test]
    fn the_cookie_beats_the_browser_preference() {
        assert_eq!(
            Lang::for_request(Some("a=1; room_lang=en"), Some("ko-KR")),
            Lang::En
        );
        assert_eq!(Lang::for_request(Some("room_lang=ko"), None), Lang::Ko);
        assert_eq!(
            Lang::for_request(Some("room_lang=xx"), Some("ko")),
            Lang::Ko
        );
        assert_eq!(Lang::for_request(None, None), Lang::En);
    }

    #[test]
    fn both_catalogs_fill_every_parametrised_string() {
        for lang in Lang::ALL {
            let t = lang.texts();
            assert!((t.people_count)(3).contains('3'));
            assert!((t.call_full)(6).contains('6'));
            assert!((t.you_joined)("standup", "Ann").contains("standup"));
            assert!((t.left)("Ann", LeaveReason::TooSlow).contains("Ann"));
            assert!((t.screen_of)("Ann").contains("Ann"));
            assert!(!t.link_state(LinkState::Reconnecting).is_empty());
            assert!(t
                .refusal(
                    ErrorCode::CallFull,
                    "",
                    Limits {
                        max_call_members: 3,
                        ..RoomLimits::DEFAULT_ADVERTISED
                    }
                )
                .contains('3'));
        }
        assert_ne!(EN.join, KO.join);
        assert_eq!(EN.link_state(LinkState::Failed), "connection failed");
        assert_eq!(KO.link_state(LinkState::Failed), "연결 실패");
    }
}
