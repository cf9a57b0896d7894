//! Load tests: scenarios that hold a rate (1000 messages/s) and judge latency against a
//! baseline measured in the same run. They live in their own test binary because cargo
//! runs test binaries one after another: here they do not share the two cores with the
//! 170 tests of `tests/api`, which run in parallel.

#[allow(dead_code)] // Helpers for the other suite too; this one uses a few.
#[path = "../api/helpers.rs"]
mod helpers;

mod backpressure;
