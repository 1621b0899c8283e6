//! Any byte string given to the frame decoder yields a frame or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    silence_caught_panics();
    // As a whole frame (with its size patched to match, so decoding goes past the header).
    let _ = busdrain_amqp::decode_frame(data);
    if data.len() >= 8 {
        let mut patched = data.to_vec();
        let len = (patched.len() as u32).to_be_bytes();
        patched[..4].copy_from_slice(&len);
        patched[4] = patched[4].clamp(2, 4);
        let _ = busdrain_amqp::decode_frame(&patched);
    }
});

/// libfuzzer-sys aborts on every panic, even one the engine catches on purpose (see
/// `busdrain_amqp::from_slice_checked`). An uncaught panic still aborts: it cannot unwind
/// out of the fuzz entry point.
fn silence_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
