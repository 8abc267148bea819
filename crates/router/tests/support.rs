//! Shared helpers.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use sluice_router::{Router, RouterStore};

pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

pub static SAMPLE: LazyLock<RouterStore> = LazyLock::new(RouterStore::embedded_sample);

pub fn sample(version: u32) -> Arc<Router> {
    SAMPLE.get("sample", version).unwrap()
}
