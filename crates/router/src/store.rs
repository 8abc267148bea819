//! A directory of routers: `<dir>/<router-id>/<version>.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sluice_core::Profiles;

use crate::config::Origin;
use crate::error::{BuildError, NotFound, Problem};
use crate::router::Router;

/// Version 1 of the sample router shipped in `routers/sample/`.
pub const SAMPLE_V1: &str = include_str!("../routers/sample/1.toml");
/// Version 2 of the sample router shipped in `routers/sample/`.
pub const SAMPLE_V2: &str = include_str!("../routers/sample/2.toml");

/// The embedded sample router's versions and texts.
const SAMPLES: [(u32, &str); 2] = [(1, SAMPLE_V1), (2, SAMPLE_V2)];

/// Routers by id and version. Versions are immutable: a store never holds two
/// routers under one (id, version).
///
/// ```
/// use sluice_router::RouterStore;
///
/// let store = RouterStore::embedded_sample();
/// assert!(store.get("sample", 1).is_ok());
/// let missing = store.get("sample", 99).unwrap_err();
/// assert_eq!(missing.code(), "40400");
/// ```
#[derive(Debug, Default, Clone)]
pub struct RouterStore {
    routers: BTreeMap<(String, u32), Arc<Router>>,
}

impl RouterStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sample router (`sample`, versions 1 and 2), compiled into the crate:
    /// works with no files.
    pub fn embedded_sample() -> Self {
        Self::embedded_sample_versions(|_| true)
    }

    /// Only `version` of the sample router (default: the highest), or an empty
    /// store where there is no such version: what routing with one version
    /// needs, without compiling the others.
    ///
    /// ```
    /// use sluice_router::RouterStore;
    ///
    /// let store = RouterStore::embedded_sample_version(None);
    /// assert_eq!(store.len(), 1);
    /// assert_eq!(store.latest("sample").unwrap().version(), 2);
    /// assert!(RouterStore::embedded_sample_version(Some(99)).is_empty());
    /// ```
    pub fn embedded_sample_version(version: Option<u32>) -> Self {
        let latest = SAMPLES.iter().map(|&(v, _)| v).max();
        let wanted = version.or(latest);
        Self::embedded_sample_versions(|v| Some(v) == wanted)
    }

    fn embedded_sample_versions(keep: impl Fn(u32) -> bool) -> Self {
        let mut store = Self::new();
        for &(version, text) in SAMPLES.iter().filter(|(v, _)| keep(*v)) {
            let origin = Origin {
                id: Some("sample".into()),
                version: Some(version),
            };
            let file = format!("routers/sample/{version}.toml");
            let router = Router::load(text, &file, &origin, &Profiles::builtin())
                .expect("the embedded sample router is valid (tested)");
            store.insert(router).expect("distinct versions");
        }
        store
    }

    /// Loads every `<dir>/<router-id>/<version>.toml` with the built-in model
    /// profiles. Every invalid file is reported, not only the first.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, BuildError> {
        Self::load_dir_with(dir.as_ref(), &Profiles::builtin())
    }

    /// Like [`RouterStore::load_dir`], resolving model names in `profiles`.
    pub fn load_dir_with(dir: &Path, profiles: &Profiles) -> Result<Self, BuildError> {
        let io = |path: &Path, e: std::io::Error| BuildError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut store = Self::new();
        let mut problems = Vec::new();
        let mut ids: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io(dir, e))?;
        ids.sort_by_key(|e| e.file_name());
        for id_entry in ids {
            let id_path = id_entry.path();
            if !id_path.is_dir() {
                continue;
            }
            let mut files: Vec<_> = std::fs::read_dir(&id_path)
                .map_err(|e| io(&id_path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io(&id_path, e))?;
            files.sort_by_key(|e| e.file_name());
            for file in files {
                let path = file.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let version = stem
                    .parse::<u32>()
                    .ok()
                    .filter(|v| *v >= 1 && v.to_string() == stem);
                let Some(version) = version else {
                    problems.push(Problem {
                        file: path.display().to_string(),
                        line: 0,
                        reason:
                            "a router file must be named <version>.toml, version an integer >= 1"
                                .into(),
                    });
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                let origin = Origin {
                    id: id_path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .map(str::to_string),
                    version: Some(version),
                };
                match Router::load(&text, &path.display().to_string(), &origin, profiles) {
                    Ok(router) => {
                        store.insert(router)?;
                    }
                    Err(BuildError::Invalid(p)) => problems.extend(p),
                    Err(e) => return Err(e),
                }
            }
        }
        if problems.is_empty() {
            Ok(store)
        } else {
            Err(BuildError::Invalid(problems))
        }
    }

    /// Adds a router. A second router under the same id and version is an error:
    /// versions are immutable.
    pub fn insert(&mut self, router: Router) -> Result<Arc<Router>, BuildError> {
        let key = (router.id().to_string(), router.version());
        if let Some(old) = self.routers.get(&key) {
            return Err(BuildError::Invalid(vec![Problem {
                file: router.file().to_string(),
                line: 0,
                reason: format!(
                    "router {} version {} is already loaded from {}; versions are immutable",
                    key.0,
                    key.1,
                    old.file()
                ),
            }]));
        }
        let router = Arc::new(router);
        self.routers.insert(key, Arc::clone(&router));
        Ok(router)
    }

    /// The router `id` at `version`, or [`NotFound`] (`40400`).
    pub fn get(&self, id: &str, version: u32) -> Result<Arc<Router>, NotFound> {
        self.routers
            .get(&(id.to_string(), version))
            .cloned()
            .ok_or_else(|| NotFound {
                router_id: id.to_string(),
                version,
            })
    }

    /// The highest version of `id`.
    pub fn latest(&self, id: &str) -> Option<Arc<Router>> {
        self.routers
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .next_back()
            .map(|(_, r)| Arc::clone(r))
    }

    /// Every router, by id then version.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Router>> {
        self.routers.values()
    }

    /// How many routers (id and version pairs) the store holds.
    pub fn len(&self) -> usize {
        self.routers.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
    }
}
