//! Integration tests of sluice-core, compiled into one binary.

mod corpus;
mod encodings;
mod formats;
mod fuzz_regressions;
mod hostile;
mod properties;
mod window_cases;
mod wire_ref;
