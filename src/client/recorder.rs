//! Records the meeting in the browser: the stage as this page shows it, drawn onto a canvas
//! up to twenty times a second (fewer while the encoder falls behind, see
//! [`crate::recording`]), and every voice (this page's microphone and everyone received)
//! mixed with WebAudio, into one WebM file (VP8 and Opus) that downloads once the encoder has
//! written its last frame. Nothing leaves the browser.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use gloo_timers::callback::Interval;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AudioContext, Blob, BlobEvent, CanvasRenderingContext2d, Element, HtmlAnchorElement,
    HtmlCanvasElement, HtmlElement, HtmlVideoElement, MediaRecorder, MediaRecorderOptions,
    MediaStream, MediaStreamAudioDestinationNode, MediaStreamAudioSourceNode, MediaStreamTrack,
};

use crate::recording::{Drain, FramePacing, WebmProgress, FASTEST_FRAME_MS};

/// The recording's frame: 540p, sharp enough for a stage of tiles and light enough to encode
/// in real time beside a call on a modest laptop.
const WIDTH: u32 = 960;
const HEIGHT: u32 = 540;
/// The drawing timer's tick; frames are drawn on the ticks the pacing allows.
const TICK_MS: u32 = FASTEST_FRAME_MS;
/// New voices (someone joined) are looked for this often, in ticks.
const AUDIO_SCAN_TICKS: u32 = 15;
/// While draining, the recorder is asked for what it has written this often.
const DRAIN_POLL_MS: u32 = 250;
const MIME_TYPES: [&str; 2] = ["video/webm;codecs=vp8,opus", "video/webm"];

/// A recording in progress; [`Recorder::stop`] ends it and downloads the file.
pub struct Recorder {
    recorder: MediaRecorder,
    _frames: Interval,
    _on_data: Closure<dyn FnMut(BlobEvent)>,
    finished: Rc<RefCell<Option<Finish>>>,
    output: Rc<RefCell<Output>>,
    sources: Rc<RefCell<Vec<MediaStreamAudioSourceNode>>>,
}

/// What is needed once the recorder has handed over its last data.
struct Finish {
    chunks: js_sys::Array,
    file_name: String,
    audio: AudioContext,
    _sources: Rc<RefCell<Vec<MediaStreamAudioSourceNode>>>,
}

/// What the recorder has written, read back as it comes: how far its video has got, and the
/// pacing that follows from it.
struct Output {
    /// Date.now() when the recorder started.
    started_ms: f64,
    /// Recording time of the last frame drawn.
    drawn_until_ms: u64,
    progress: WebmProgress,
    pacing: FramePacing,
    /// Data handed over and not read back yet, in order; `reading` while a task reads it.
    unread: VecDeque<Blob>,
    reading: bool,
    /// After "stop", the pacing stays as it was.
    stopped: bool,
}

impl Output {
    fn elapsed_ms(&self) -> u64 {
        (js_sys::Date::now() - self.started_ms).max(0.0) as u64
    }
}

/// Reads back, in order, the data the recorder has handed over (one task at a time, as the
/// WebM reader needs the bytes in order).
fn read_back(output: Rc<RefCell<Output>>) {
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let next = output.borrow_mut().unread.pop_front();
            let Some(blob) = next else {
                output.borrow_mut().reading = false;
                return;
            };
            let Ok(buffer) = JsFuture::from(blob.array_buffer()).await else {
                continue;
            };
            let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
            let mut output = output.borrow_mut();
            output.progress.push(&bytes);
            if let Some(written) = output.progress.latest_video_ms() {
                if !output.stopped {
                    let elapsed = output.elapsed_ms();
                    output.pacing.on_progress(elapsed, written);
                }
            }
        }
    });
}

impl Recorder {
    /// Starts recording what `stage` shows; the file will be called `file_name`.
    pub fn start(stage: &Element, file_name: String) -> Result<Recorder, String> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no document")?;
        let mime = MIME_TYPES
            .into_iter()
            .find(|mime| MediaRecorder::is_type_supported(mime))
            .ok_or("this browser cannot record WebM")?;
        let canvas: HtmlCanvasElement = document
            .create_element("canvas")
            .map_err(describe)?
            .unchecked_into();
        canvas.set_width(WIDTH);
        canvas.set_height(HEIGHT);
        let context: CanvasRenderingContext2d = canvas
            .get_context("2d")
            .map_err(describe)?
            .ok_or("no 2d canvas")?
            .unchecked_into();
        let video = canvas
            .capture_stream_with_frame_request_rate(f64::from(1000 / FASTEST_FRAME_MS))
            .map_err(describe)?;

        let audio = AudioContext::new().map_err(describe)?;
        let mix: MediaStreamAudioDestinationNode =
            audio.create_media_stream_destination().map_err(describe)?;
        let sources = Rc::new(RefCell::new(Vec::new()));
        let heard = RefCell::new(HashSet::new());
        let stream = MediaStream::new().map_err(describe)?;
        for track in video.get_video_tracks().iter() {
            stream.add_track(track.unchecked_ref());
        }
        for track in mix.stream().get_audio_tracks().iter() {
            stream.add_track(track.unchecked_ref());
        }

        let options = MediaRecorderOptions::new();
        options.set_mime_type(mime);
        let recorder =
            MediaRecorder::new_with_media_stream_and_media_recorder_options(&stream, &options)
                .map_err(describe)?;
        let chunks = js_sys::Array::new();
        let output = Rc::new(RefCell::new(Output {
            started_ms: js_sys::Date::now(),
            drawn_until_ms: 0,
            progress: WebmProgress::default(),
            pacing: FramePacing::default(),
            unread: VecDeque::new(),
            reading: false,
            stopped: false,
        }));
        let on_data = {
            let chunks = chunks.clone();
            let output = Rc::clone(&output);
            Closure::<dyn FnMut(BlobEvent)>::new(move |event: BlobEvent| {
                if let Some(data) = event.data() {
                    if data.size() > 0.0 {
                        chunks.push(&data);
                        let start_reading = {
                            let mut output = output.borrow_mut();
                            output.unread.push_back(data);
                            !std::mem::replace(&mut output.reading, true)
                        };
                        if start_reading {
                            read_back(Rc::clone(&output));
                        }
                    }
                }
            })
        };
        recorder.set_ondataavailable(Some(on_data.as_ref().unchecked_ref()));

        let stage = stage.clone();
        let frame_sources = Rc::clone(&sources);
        let frame_audio = audio.clone();
        let frame_output = Rc::clone(&output);
        let mut tick = 0u32;
        let mut last_drawn: Option<u64> = None;
        let frames = Interval::new(TICK_MS, move || {
            let elapsed = frame_output.borrow().elapsed_ms();
            let interval = u64::from(frame_output.borrow().pacing.interval_ms());
            // A tick's lateness does not count against the next frame.
            let slack = u64::from(TICK_MS / 2);
            if last_drawn.is_none_or(|last| elapsed + slack >= last + interval) {
                draw(&context, &stage);
                last_drawn = Some(elapsed);
                frame_output.borrow_mut().drawn_until_ms = elapsed;
            }
            if tick.is_multiple_of(AUDIO_SCAN_TICKS) {
                mix_new_voices(&frame_audio, &mix, &stage, &heard, &frame_sources);
            }
            tick = tick.wrapping_add(1);
        });
        // Data every second, so a long recording is not one huge buffer at the end, and the
        // pacing learns how far the encoder has got.
        recorder.start_with_time_slice(1000).map_err(describe)?;
        output.borrow_mut().started_ms = js_sys::Date::now();
        Ok(Recorder {
            recorder,
            _frames: frames,
            _on_data: on_data,
            finished: Rc::new(RefCell::new(Some(Finish {
                chunks,
                file_name,
                audio,
                _sources: Rc::clone(&sources),
            }))),
            output,
            sources,
        })
    }

    /// Stops and, once the encoder has written the frames it still has (on a busy machine it
    /// runs behind, and stopping at once would lose them), downloads the file.
    pub fn stop(self) {
        let Recorder {
            recorder,
            _frames: frames,
            _on_data: on_data,
            finished,
            output,
            sources,
        } = self;
        // No new frames, and nothing said from now on is recorded (silence fills the drain).
        drop(frames);
        for source in sources.borrow().iter() {
            source.disconnect().ok();
        }
        let drain = {
            let mut output = output.borrow_mut();
            output.stopped = true;
            Drain::new(
                js_sys::Date::now() as u64,
                output.drawn_until_ms,
                output.progress.latest_video_ms(),
            )
        };
        drain_then_stop(recorder, on_data, finished, output, drain);
    }
}

/// Asks the recorder for what it has written every [`DRAIN_POLL_MS`] until the drain is done,
/// then stops it and downloads the file.
fn drain_then_stop(
    recorder: MediaRecorder,
    on_data: Closure<dyn FnMut(BlobEvent)>,
    finished: Rc<RefCell<Option<Finish>>>,
    output: Rc<RefCell<Output>>,
    mut drain: Drain,
) {
    gloo_timers::callback::Timeout::new(DRAIN_POLL_MS, move || {
        let done = {
            let output = output.borrow();
            drain.is_done(
                js_sys::Date::now() as u64,
                output.progress.latest_video_ms(),
                output.progress.is_lost(),
            )
        };
        if !done {
            // Already stopped (the browser ended it) is handled when the drain is done.
            recorder.request_data().ok();
            drain_then_stop(recorder, on_data, finished, output, drain);
            return;
        }
        let stopped = recorder.clone();
        let done = Rc::clone(&finished);
        let on_stop = Closure::once_into_js(move || {
            // The last `dataavailable` comes just before `stop`: its handler lives until
            // here.
            stopped.set_ondataavailable(None);
            drop(on_data);
            if let Some(finish) = done.borrow_mut().take() {
                download(&finish.chunks, &finish.file_name);
                let _ = finish.audio.close();
            }
        });
        recorder.set_onstop(Some(on_stop.unchecked_ref()));
        if recorder.stop().is_err() {
            // Already stopped (the browser ended it): what there is still downloads.
            if let Some(finish) = finished.borrow_mut().take() {
                download(&finish.chunks, &finish.file_name);
            }
        }
    })
    .forget();
}

fn describe(error: JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

/// Draws every tile the stage shows where it shows it, scaled to the frame.
fn draw(context: &CanvasRenderingContext2d, stage: &Element) {
    context.set_fill_style_str("#0e1110");
    context.fill_rect(0.0, 0.0, f64::from(WIDTH), f64::from(HEIGHT));
    let area = stage.get_bounding_client_rect();
    if area.width() <= 0.0 || area.height() <= 0.0 {
        return;
    }
    let scale = (f64::from(WIDTH) / area.width()).min(f64::from(HEIGHT) / area.height());
    let left = (f64::from(WIDTH) - area.width() * scale) / 2.0;
    let top = (f64::from(HEIGHT) - area.height() * scale) / 2.0;
    let Ok(tiles) = stage.query_selector_all(".tile") else {
        return;
    };
    for index in 0..tiles.length() {
        let Some(tile) = tiles
            .item(index)
            .and_then(|n| n.dyn_into::<HtmlElement>().ok())
        else {
            continue;
        };
        let rect = tile.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            continue; // On another page.
        }
        let x = left + (rect.left() - area.left()) * scale;
        let y = top + (rect.top() - area.top()) * scale;
        let (w, h) = (rect.width() * scale, rect.height() * scale);
        context.set_fill_style_str("#262d2a");
        context.fill_rect(x, y, w, h);
        let video = tile
            .query_selector("video")
            .ok()
            .flatten()
            .and_then(|v| v.dyn_into::<HtmlVideoElement>().ok());
        let camera_off = tile.class_list().contains("camera-off");
        match video.filter(|v| !camera_off && v.ready_state() >= 2 && v.video_width() > 0) {
            Some(video) => draw_video(context, &video, x, y, w, h),
            None => {
                let initials = tile
                    .query_selector(".placeholder")
                    .ok()
                    .flatten()
                    .and_then(|p| p.text_content())
                    .unwrap_or_default();
                context.set_fill_style_str("#e8edea");
                context.set_font(&format!("600 {}px sans-serif", (h / 5.0).round()));
                context.set_text_align("center");
                context.set_text_baseline("middle");
                let _ = context.fill_text(&initials, x + w / 2.0, y + h / 2.0);
            }
        }
        let name = tile
            .query_selector(".tile-name")
            .ok()
            .flatten()
            .and_then(|n| n.text_content())
            .unwrap_or_default();
        if !name.is_empty() {
            context.set_font("500 18px sans-serif");
            context.set_text_align("left");
            context.set_text_baseline("bottom");
            context.set_fill_style_str("rgba(0,0,0,0.55)");
            let width = context.measure_text(&name).map_or(0.0, |m| m.width());
            context.fill_rect(x + 8.0, y + h - 34.0, width + 16.0, 26.0);
            context.set_fill_style_str("#ffffff");
            let _ = context.fill_text(&name, x + 16.0, y + h - 12.0);
        }
    }
}

/// Draws a video filling its tile as the page does (`object-fit: cover`), mirrored if the
/// page mirrors it.
fn draw_video(
    context: &CanvasRenderingContext2d,
    video: &HtmlVideoElement,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
) {
    let (vw, vh) = (
        f64::from(video.video_width()),
        f64::from(video.video_height()),
    );
    let cover = (w / vw).max(h / vh);
    let (sw, sh) = (w / cover, h / cover);
    let (sx, sy) = ((vw - sw) / 2.0, (vh - sh) / 2.0);
    let mirrored = video.class_list().contains("mirror");
    context.save();
    if mirrored {
        let _ = context.translate(x + w, y);
        let _ = context.scale(-1.0, 1.0);
        let _ = context
            .draw_image_with_html_video_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                video, sx, sy, sw, sh, 0.0, 0.0, w, h,
            );
    } else {
        let _ = context
            .draw_image_with_html_video_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                video, sx, sy, sw, sh, x, y, w, h,
            );
    }
    context.restore();
}

/// Adds to the mix every voice on the stage not in it yet: this page's microphone (in the
/// self-view's stream) and each member's received audio.
fn mix_new_voices(
    audio: &AudioContext,
    mix: &MediaStreamAudioDestinationNode,
    stage: &Element,
    heard: &RefCell<HashSet<String>>,
    sources: &RefCell<Vec<MediaStreamAudioSourceNode>>,
) {
    let Ok(videos) = stage.query_selector_all("video") else {
        return;
    };
    for index in 0..videos.length() {
        let Some(stream) = videos
            .item(index)
            .and_then(|v| v.dyn_into::<HtmlVideoElement>().ok())
            .and_then(|v| v.src_object())
            .and_then(|s| s.dyn_into::<MediaStream>().ok())
        else {
            continue;
        };
        for track in stream.get_audio_tracks().iter() {
            let track: MediaStreamTrack = track.unchecked_into();
            if !heard.borrow_mut().insert(track.id()) {
                continue;
            }
            let Ok(alone) = MediaStream::new() else {
                continue;
            };
            alone.add_track(&track);
            if let Ok(source) = audio.create_media_stream_source(&alone) {
                let _ = source.connect_with_audio_node(mix);
                sources.borrow_mut().push(source);
            }
        }
    }
}

/// Hands the recorded data to the browser as a download.
fn download(chunks: &js_sys::Array, file_name: &str) {
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("video/webm");
    let Ok(blob) = web_sys::Blob::new_with_blob_sequence_and_options(chunks, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Ok(link) = document.create_element("a") {
        let link: HtmlAnchorElement = link.unchecked_into();
        link.set_href(&url);
        link.set_download(file_name);
        if let Some(body) = document.body() {
            let _ = body.append_child(&link);
            link.click();
            let _ = body.remove_child(&link);
        }
    }
    // The download has its own copy once started; free ours a little later.
    gloo_timers::callback::Timeout::new(60_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
}
