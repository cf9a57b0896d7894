//! Load tests: scenarios that push a volume of messages through the real server and
//! check its behaviour under it (no loss, disconnects, bounded memory), never its speed
//! (`palaver-bench` measures that). They live in their own test binary because cargo runs
//! test binaries one after another: here they do not share the two cores with the tests
//! of `tests/api`, which run in parallel.

#[allow(dead_code)] // Helpers for the other suite too; this one uses a few.
#[path = "../api/helpers.rs"]
mod helpers;

mod backpressure;
