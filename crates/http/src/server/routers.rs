//! The routers the server answers for: loaded at start from a directory (or the
//! embedded sample), and versions added to the directory later are loaded on
//! first use, since router versions are immutable files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sluice_core::Profiles;
use sluice_router::{BuildError, NotFound, Router, RouterStore};

/// Routers by id and version.
#[derive(Debug)]
pub(crate) struct Routers {
    store: RwLock<RouterStore>,
    dir: Option<PathBuf>,
}

/// Why a router cannot be had.
#[derive(Debug)]
pub(crate) enum Missing {
    /// No such id or version (`40400`).
    NotFound(NotFound),
    /// The file exists and is invalid (`65001`), or cannot be read.
    Invalid(BuildError),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotFound(e) => e.fmt(f),
            Missing::Invalid(e) => e.fmt(f),
        }
    }
}

impl Routers {
    pub(crate) fn new(store: RouterStore, dir: Option<PathBuf>) -> Self {
        Self {
            store: RwLock::new(store),
            dir,
        }
    }

    pub(crate) fn get(
        &self,
        id: &str,
        version: u32,
        profiles: &Profiles,
    ) -> Result<Arc<Router>, Missing> {
        let not_found = || NotFound::new(id, version);
        let found = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id, version);
        let Err(missing) = found else {
            return found.map_err(Missing::NotFound);
        };
        let (Some(dir), Some(path)) = (self.dir.as_deref(), self.file(id, version)) else {
            return Err(Missing::NotFound(missing));
        };
        if !path.is_file() {
            return Err(Missing::NotFound(not_found()));
        }
        // Errors reach clients: name files relative to the router directory.
        let invalid = |e: BuildError| Missing::Invalid(e.relative_to(dir));
        let router = Router::from_file_with(&path, profiles).map_err(invalid)?;
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        // Another request may have loaded it meanwhile; the first one stays.
        if let Ok(loaded) = store.get(id, version) {
            return Ok(loaded);
        }
        store.insert(router).map_err(invalid)
    }

    /// `<dir>/<id>/<version>.toml`, for an id that is one plain path segment.
    fn file(&self, id: &str, version: u32) -> Option<PathBuf> {
        let dir = self.dir.as_deref()?;
        let plain = !id.is_empty()
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        plain.then(|| Path::new(dir).join(id).join(format!("{version}.toml")))
    }
}
