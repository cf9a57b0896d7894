//! The SignalR hub method parsers (`/hubs/chat`, `/hubs/webrtc`) on arbitrary records
//! (see `palaver_fuzz::hub`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| palaver_fuzz::hub(data));
