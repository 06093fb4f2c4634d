//! Acoustic echo cancellation and noise suppression for the speakerphone: the base unit's
//! loudspeaker is a few centimetres from its microphone, so without this the operator hears
//! themselves. The canceller is speexdsp's (Xiph; Debian's `libspeexdsp1`), not a home-made
//! one: its adaptive multi-delay block filter removes the echo path, then its preprocessor
//! suppresses the residual echo and the room's noise.
//!
//! The library is loaded when a call starts (`libloading`), so the unit builds with the Rust
//! toolchain alone; where it is missing, calls still work, without echo cancellation, and the
//! reason is given ([`EchoCanceller::open`]).

use std::ffi::{c_int, c_void};

use libloading::{Library, Symbol};

use super::call_port::FRAME;

/// The library's names, most specific first.
const LIBRARY: [&str; 2] = ["libspeexdsp.so.1", "libspeexdsp.so"];
/// `SPEEX_ECHO_SET_SAMPLING_RATE` (speex_echo.h).
const ECHO_SET_SAMPLING_RATE: c_int = 24;
/// `SPEEX_PREPROCESS_SET_DENOISE` (speex_preprocess.h).
const PREPROCESS_SET_DENOISE: c_int = 0;
/// `SPEEX_PREPROCESS_SET_ECHO_STATE`.
const PREPROCESS_SET_ECHO_STATE: c_int = 24;
/// `SPEEX_PREPROCESS_SET_NOISE_SUPPRESS` (dB, negative).
const PREPROCESS_SET_NOISE_SUPPRESS: c_int = 18;
/// `SPEEX_PREPROCESS_SET_ECHO_SUPPRESS` (dB, negative).
const PREPROCESS_SET_ECHO_SUPPRESS: c_int = 20;
/// `SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE` (dB, negative).
const PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE: c_int = 22;

/// How much echo path the filter models: 256 ms at 8 kHz covers a small room's reverberation
/// and the audio path's delay.
pub const TAIL: usize = 2048;

type EchoInit = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type EchoCtl = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void) -> c_int;
type EchoCancel = unsafe extern "C" fn(*mut c_void, *const i16, *const i16, *mut i16);
type Destroy = unsafe extern "C" fn(*mut c_void);
type PreInit = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type PreCtl = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void) -> c_int;
type PreRun = unsafe extern "C" fn(*mut c_void, *mut i16) -> c_int;

/// Why the echo canceller is not there: a call then goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum EchoUnavailable {
    /// The library is not installed.
    #[error("speexdsp is not installed (Debian: libspeexdsp1)")]
    NotInstalled,
    /// The library lacks a function the canceller calls (a version too old or too new).
    #[error("speexdsp lacks {symbol}: {source}")]
    MissingSymbol {
        /// The function's name.
        symbol: String,
        /// What the loader said.
        source: libloading::Error,
    },
    /// The library would not make the echo canceller's state.
    #[error("speexdsp could not make an echo canceller")]
    NoEchoState,
    /// The library would not make the preprocessor's state.
    #[error("speexdsp could not make a preprocessor")]
    NoPreprocessor,
}

/// One call's echo canceller at 8 kHz, 20 ms frames.
pub struct EchoCanceller {
    echo: *mut c_void,
    pre: *mut c_void,
    cancel: EchoCancel,
    run: PreRun,
    echo_destroy: Destroy,
    pre_destroy: Destroy,
    /// Kept loaded while the states live.
    _lib: Library,
}

// SAFETY: the states are used only through `&mut self` (one thread at a time), and speexdsp's
// states hold no thread-affine resources.
unsafe impl Send for EchoCanceller {}

impl EchoCanceller {
    /// Loads speexdsp and sets up a canceller with noise suppression; the reason if it cannot.
    pub fn open() -> Result<EchoCanceller, EchoUnavailable> {
        // SAFETY: loading a shared library runs its initialisers; speexdsp's have no side
        // effects beyond the library itself.
        let lib = LIBRARY
            .iter()
            .find_map(|name| unsafe { Library::new(name) }.ok())
            .ok_or(EchoUnavailable::NotInstalled)?;
        // SAFETY: each symbol is looked up with the signature speexdsp's headers declare.
        unsafe {
            let sym = |name: &[u8]| -> Result<*mut c_void, EchoUnavailable> {
                let s: Symbol<*mut c_void> =
                    lib.get(name)
                        .map_err(|source| EchoUnavailable::MissingSymbol {
                            symbol: String::from_utf8_lossy(name)
                                .trim_end_matches('\0')
                                .to_string(),
                            source,
                        })?;
                Ok(*s)
            };
            let echo_init: EchoInit = std::mem::transmute(sym(b"speex_echo_state_init\0")?);
            let echo_ctl: EchoCtl = std::mem::transmute(sym(b"speex_echo_ctl\0")?);
            let cancel: EchoCancel = std::mem::transmute(sym(b"speex_echo_cancellation\0")?);
            let echo_destroy: Destroy = std::mem::transmute(sym(b"speex_echo_state_destroy\0")?);
            let pre_init: PreInit = std::mem::transmute(sym(b"speex_preprocess_state_init\0")?);
            let pre_ctl: PreCtl = std::mem::transmute(sym(b"speex_preprocess_ctl\0")?);
            let run: PreRun = std::mem::transmute(sym(b"speex_preprocess_run\0")?);
            let pre_destroy: Destroy =
                std::mem::transmute(sym(b"speex_preprocess_state_destroy\0")?);
            let echo = echo_init(FRAME as c_int, TAIL as c_int);
            if echo.is_null() {
                return Err(EchoUnavailable::NoEchoState);
            }
            let mut rate: c_int = 8000;
            echo_ctl(echo, ECHO_SET_SAMPLING_RATE, (&raw mut rate).cast());
            let pre = pre_init(FRAME as c_int, 8000);
            if pre.is_null() {
                echo_destroy(echo);
                return Err(EchoUnavailable::NoPreprocessor);
            }
            pre_ctl(pre, PREPROCESS_SET_ECHO_STATE, echo);
            let mut on: c_int = 1;
            pre_ctl(pre, PREPROCESS_SET_DENOISE, (&raw mut on).cast());
            let mut noise: c_int = -25;
            pre_ctl(pre, PREPROCESS_SET_NOISE_SUPPRESS, (&raw mut noise).cast());
            let mut residual: c_int = -45;
            pre_ctl(
                pre,
                PREPROCESS_SET_ECHO_SUPPRESS,
                (&raw mut residual).cast(),
            );
            let mut active: c_int = -15;
            pre_ctl(
                pre,
                PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE,
                (&raw mut active).cast(),
            );
            Ok(EchoCanceller {
                echo,
                pre,
                cancel,
                run,
                echo_destroy,
                pre_destroy,
                _lib: lib,
            })
        }
    }

    /// The microphone's frame with the echo of `played` (the frame the loudspeaker played at
    /// the same time) removed, and noise suppressed.
    pub fn process(&mut self, mic: &[i16; FRAME], played: &[i16; FRAME]) -> [i16; FRAME] {
        let mut out = [0i16; FRAME];
        // SAFETY: the states are valid until drop; each buffer holds the frame size the states
        // were made for.
        unsafe {
            (self.cancel)(self.echo, mic.as_ptr(), played.as_ptr(), out.as_mut_ptr());
            (self.run)(self.pre, out.as_mut_ptr());
        }
        out
    }
}

impl Drop for EchoCanceller {
    fn drop(&mut self) {
        // SAFETY: made by the matching init functions, destroyed once.
        unsafe {
            (self.pre_destroy)(self.pre);
            (self.echo_destroy)(self.echo);
        }
    }
}
