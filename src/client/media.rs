//! The local camera and microphone: opening and switching devices, listing them, and a level
//! meter for the microphone.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AnalyserNode, AudioContext, AudioContextState, ConstrainDomStringParameters, DomException,
    HtmlMediaElement, MediaDeviceInfo, MediaDeviceKind, MediaStream, MediaStreamAudioSourceNode,
    MediaStreamConstraints, MediaStreamTrack, MediaTrackConstraints,
};

use crate::media::{DeviceInfo, DeviceKind, MediaProblem, VoiceProcessing};

/// Which device of one kind to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Off,
    Any,
    Device(String),
}

impl Want {
    /// `false`, `true` or `{deviceId: {exact: id}}`, as `getUserMedia` takes it.
    fn constraint(&self) -> JsValue {
        match self {
            Want::Off => JsValue::FALSE,
            Want::Any => JsValue::TRUE,
            Want::Device(_) => self.track_constraints().into(),
        }
    }

    /// A microphone with the person's choice of processing.
    fn voice_constraint(&self, voice: VoiceProcessing) -> JsValue {
        if *self == Want::Off {
            return JsValue::FALSE;
        }
        let constraint = self.track_constraints();
        constraint.set_noise_suppression_bool(voice.noise_suppression);
        constraint.set_echo_cancellation_bool(voice.echo_cancellation);
        constraint.into()
    }

    fn track_constraints(&self) -> MediaTrackConstraints {
        let constraint = MediaTrackConstraints::new();
        if let Want::Device(id) = self {
            let exact = ConstrainDomStringParameters::new();
            exact.set_exact_str(id);
            constraint.set_device_id_constrain_dom_string_parameters(&exact);
        }
        constraint
    }
}

/// Changes the processing of a microphone already open; the browser applies it in place.
pub fn apply_voice_processing(track: &MediaStreamTrack, voice: VoiceProcessing) {
    let constraint = MediaTrackConstraints::new();
    constraint.set_noise_suppression_bool(voice.noise_suppression);
    constraint.set_echo_cancellation_bool(voice.echo_cancellation);
    if let Ok(promise) = track.apply_constraints_with_constraints(&constraint) {
        // A browser that cannot change it keeps what it had; nothing to tell the person.
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
    }
}

fn media_devices() -> Result<web_sys::MediaDevices, MediaProblem> {
    web_sys::window()
        .and_then(|w| w.navigator().media_devices().ok())
        .ok_or(MediaProblem::NoDevice)
}

/// Media errors are `DOMException`s (`NotAllowedError`, `NotFoundError`, …).
fn problem_from(error: JsValue) -> MediaProblem {
    match error.dyn_ref::<DomException>() {
        Some(exception) => MediaProblem::from_error_name(&exception.name(), &exception.message()),
        None => MediaProblem::from_error_name("", &format!("{error:?}")),
    }
}

/// `getUserMedia` for the wanted audio and video; both `Off` opens nothing.
pub async fn get_user_media(
    audio: &Want,
    video: &Want,
    voice: VoiceProcessing,
) -> Result<MediaStream, MediaProblem> {
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&audio.voice_constraint(voice));
    constraints.set_video(&video.constraint());
    let promise = media_devices()?
        .get_user_media_with_constraints(&constraints)
        .map_err(problem_from)?;
    let stream = JsFuture::from(promise).await.map_err(problem_from)?;
    stream
        .dyn_into::<MediaStream>()
        .map_err(|_| MediaProblem::Unavailable("getUserMedia returned no stream".into()))
}

/// Cameras and microphones; labels are only filled in once permission was granted.
pub async fn list_devices() -> Vec<DeviceInfo> {
    let Ok(devices) = media_devices() else {
        return Vec::new();
    };
    let Ok(promise) = devices.enumerate_devices() else {
        return Vec::new();
    };
    let Ok(list) = JsFuture::from(promise).await else {
        return Vec::new();
    };
    let list: js_sys::Array = list.unchecked_into();
    let mut found = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let info: MediaDeviceInfo = item.unchecked_into();
        let kind = match info.kind() {
            MediaDeviceKind::Videoinput => DeviceKind::Camera,
            MediaDeviceKind::Audioinput => DeviceKind::Microphone,
            _ => continue,
        };
        let label = match info.label() {
            label if label.is_empty() => format!("Device {}", index + 1),
            label => label,
        };
        found.push(DeviceInfo {
            id: info.device_id(),
            label,
            kind,
        });
    }
    found
}

/// The device id a live track was opened from.
pub fn device_of(track: &MediaStreamTrack) -> Option<String> {
    track.get_settings().get_device_id()
}

/// Shows `stream` in a `<video>` element and starts playback.
pub fn attach(element: &HtmlMediaElement, stream: Option<&MediaStream>) {
    element.set_src_object(stream);
    if stream.is_some() {
        // Autoplay may be refused before any click; the element's autoplay attribute then
        // starts it on the next interaction, so the rejection is not an error worth showing.
        if let Ok(promise) = element.play() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = JsFuture::from(promise).await;
            });
        }
    }
}

/// `getDisplayMedia`: the browser asks the person which screen or window to share.
pub async fn get_display_media() -> Result<MediaStreamTrack, MediaProblem> {
    let promise = media_devices()?.get_display_media().map_err(problem_from)?;
    let stream: MediaStream = JsFuture::from(promise)
        .await
        .map_err(problem_from)?
        .dyn_into()
        .map_err(|_| MediaProblem::Unavailable("getDisplayMedia returned no stream".into()))?;
    let track: MediaStreamTrack = stream
        .get_video_tracks()
        .get(0)
        .dyn_into()
        .map_err(|_| MediaProblem::Unavailable("no screen track".into()))?;
    // Text on a shared screen must stay sharp: with this hint the encoder keeps the
    // resolution and lowers the frame rate when bandwidth or CPU run short. web-sys has no
    // binding for the attribute.
    let _ = js_sys::Reflect::set(&track, &"contentHint".into(), &"detail".into());
    Ok(track)
}

/// Measures how loud an audio track is: the pre-join meter and the speaker detection.
pub struct LevelMeter {
    analyser: AnalyserNode,
    _source: MediaStreamAudioSourceNode,
    samples: std::cell::RefCell<Vec<f32>>,
    /// The track measured, so a replaced track gets a new meter.
    pub track_id: String,
}

impl LevelMeter {
    pub fn new(context: &AudioContext, track: &MediaStreamTrack) -> Option<LevelMeter> {
        let stream = MediaStream::new().ok()?;
        stream.add_track(track);
        let source = context.create_media_stream_source(&stream).ok()?;
        let analyser = context.create_analyser().ok()?;
        analyser.set_fft_size(1024);
        source.connect_with_audio_node(&analyser).ok()?;
        let samples = vec![0.0; analyser.fft_size() as usize];
        Some(LevelMeter {
            analyser,
            _source: source,
            samples: std::cell::RefCell::new(samples),
            track_id: track.id(),
        })
    }

    /// Loudness from 0 (silence) to 1, on a scale that makes speech visible.
    pub fn level(&self) -> f32 {
        let mut samples = self.samples.borrow_mut();
        self.analyser.get_float_time_domain_data(&mut samples);
        let mean_square = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
        // RMS of speech is around 0.05–0.3; the square root spreads that over the bar.
        (mean_square.sqrt() * 4.0).sqrt().min(1.0)
    }
}

/// A shared audio context; browsers start them suspended until the page was interacted with,
/// so each use nudges it.
pub fn running(context: &AudioContext) -> bool {
    if context.state() == AudioContextState::Suspended {
        let _ = context.resume();
        return false;
    }
    true
}
