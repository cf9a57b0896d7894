//! The SignalR record splitter and message parsers on arbitrary client frames: the input
//! is a sequence of WebSocket text frames separated by 0x00 (see `palaver_fuzz::records`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| palaver_fuzz::records(data));
