//! Puts SmolLM2 into the model cache, like `sluice model fetch smollm2`, for
//! when only this crate is built (CI fetches the model this way before the
//! workspace tests, without building the `sluice` binary's `local` variant
//! first): `cargo run --release -p sluice-local --example fetch_smollm2`.

use sluice_local::fetch::{Fetched, fetch_smollm2, model_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = model_dir().ok_or("no model cache: set SLUICE_MODEL_DIR or HOME")?;
    match fetch_smollm2(&dir)? {
        Fetched::AlreadyPresent(path) => println!("{} (already present)", path.display()),
        Fetched::Downloaded(path) => println!("{}", path.display()),
    }
    Ok(())
}
