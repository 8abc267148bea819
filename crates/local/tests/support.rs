//! The model file, loaded once per test binary.

use sluice_local::fetch::{FETCH_HINT, model_dir, smollm2_path};
use std::path::PathBuf;

/// The cached SmolLM2 file; `None` (with a message) when it is missing outside
/// CI, a panic when it is missing under `CI=true`.
pub fn model_path() -> Option<PathBuf> {
    let path = model_dir().map(|dir| smollm2_path(&dir));
    match path {
        Some(path) if path.is_file() => Some(path),
        other => {
            let message = format!(
                "SmolLM2 is not in the model cache ({}); get it with `{FETCH_HINT}`",
                other.map_or("no cache directory".into(), |p| p.display().to_string())
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// The model, loaded once and shared by every test of the binary.
#[cfg(feature = "engine")]
pub fn model() -> Option<std::sync::Arc<sluice_local::LocalModel>> {
    use sluice_local::LocalModel;
    use std::sync::{Arc, OnceLock};

    static MODEL: OnceLock<Option<Arc<LocalModel>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            model_path().map(|p| Arc::new(LocalModel::load(p).expect("the model loads")))
        })
        .clone()
}
