//! The set of model profiles: the built-ins plus profiles files, resolving
//! names to ready [`Model`]s. A profile is plain data (see `profile`); this
//! registry builds and shares the models made from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use crate::error::BuildError;
use crate::model::{CacheScope, Model};
use crate::profile::{ChatTemplate, ImageRule, ModelProfile, TokenizerSource, builtin_profiles};
use crate::tokenizer::Embedded;

/// One profile as written in a profiles file; every field optional so that a
/// file can override single fields of an existing profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    tokenizer: Option<String>,
    tokenizer_file: Option<PathBuf>,
    context_limit: Option<u32>,
    max_output: Option<u32>,
    template: Option<TemplateEntry>,
    image_tokens: Option<u32>,
    image_tokens_low: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateEntry {
    Named(String),
    Custom(ChatTemplate),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    profiles: BTreeMap<String, ProfileEntry>,
}

/// The set of model profiles, resolving names to ready [`Model`]s.
///
/// Models are built on first use and shared afterwards, so every caller of the
/// same name shares one tokenizer and one count cache.
///
/// ```
/// let profiles = sluice_core::Profiles::builtin();
/// let model = profiles.model("HCX-003").unwrap();
/// assert_eq!(model.profile().context_limit, 4096);
/// assert!(profiles.model("no-such-model").is_err());
/// ```
#[derive(Debug)]
pub struct Profiles {
    profiles: BTreeMap<String, ModelProfile>,
    models: Mutex<BTreeMap<String, Model>>,
    cache: CacheScope,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Profiles {
    /// The built-in profiles only.
    pub fn builtin() -> Self {
        Self {
            profiles: builtin_profiles()
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            models: Mutex::new(BTreeMap::new()),
            cache: CacheScope::default(),
        }
    }

    /// Where the models built from now on keep their counts (default: one cache
    /// of [`crate::DEFAULT_CACHE_CAPACITY`] messages shared by all threads).
    pub fn with_cache_scope(mut self, scope: CacheScope) -> Self {
        self.cache = scope;
        self
    }

    /// Adds or overrides profiles from a TOML file. Relative tokenizer paths are
    /// resolved against the file's directory.
    ///
    /// ```toml
    /// [profiles.HCX-003]
    /// context_limit = 8192             # override one field of a built-in
    ///
    /// [profiles.my-seed]
    /// tokenizer_file = "seed/tokenizer.json"
    /// context_limit = 32768
    /// max_output = 4096
    /// template = "chatml"               # or "plain", or a table of the ChatTemplate fields
    /// image_tokens = 1445               # an image part's tokens (see ImageRule)
    /// image_tokens_low = 85             # ... with "detail": "low"
    /// ```
    pub fn load_file(&mut self, path: impl AsRef<Path>) -> Result<(), BuildError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| BuildError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        self.load_str(&text, &path.display().to_string(), base)
    }

    /// Adds or overrides profiles from TOML text; `origin` names it in errors and
    /// `base` is the directory relative tokenizer paths start from.
    pub fn load_str(&mut self, text: &str, origin: &str, base: &Path) -> Result<(), BuildError> {
        let err = |message: String| BuildError::Profile {
            path: origin.to_string(),
            message,
        };
        let file: ProfilesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        for (name, entry) in file.profiles {
            let existing = self.profiles.get(&name);
            let tokenizer = match (&entry.tokenizer, &entry.tokenizer_file) {
                (Some(_), Some(_)) => {
                    return Err(err(format!(
                        "profile {name}: give either `tokenizer` or `tokenizer_file`, not both"
                    )));
                }
                (Some(enc), None) => {
                    TokenizerSource::Embedded(Embedded::from_name(enc).ok_or_else(|| {
                        err(format!(
                            "profile {name}: unknown embedded tokenizer {enc:?} \
                             (expected cl100k_base or o200k_base)"
                        ))
                    })?)
                }
                (None, Some(file)) => TokenizerSource::File(base.join(file)),
                (None, None) => existing.map(|p| p.tokenizer.clone()).ok_or_else(|| {
                    err(format!(
                        "profile {name}: `tokenizer` or `tokenizer_file` is required"
                    ))
                })?,
            };
            let context_limit = entry
                .context_limit
                .or(existing.map(|p| p.context_limit))
                .ok_or_else(|| err(format!("profile {name}: `context_limit` is required")))?;
            let max_output = entry
                .max_output
                .or(existing.map(|p| p.max_output))
                .unwrap_or(context_limit);
            let template = match entry.template {
                Some(TemplateEntry::Named(t)) if t == "chatml" => ChatTemplate::chatml(),
                Some(TemplateEntry::Named(t)) if t == "plain" => ChatTemplate::plain(),
                Some(TemplateEntry::Named(t)) => {
                    return Err(err(format!(
                        "profile {name}: unknown template {t:?} (expected chatml, plain or a table)"
                    )));
                }
                Some(TemplateEntry::Custom(t)) => t,
                None => existing.map_or_else(ChatTemplate::chatml, |p| p.template.clone()),
            };
            if context_limit == 0 || max_output == 0 {
                return Err(err(format!(
                    "profile {name}: context_limit and max_output must be positive"
                )));
            }
            template
                .validate()
                .map_err(|m| err(format!("profile {name}: {m}")))?;
            let base = existing.map(|p| p.images).unwrap_or_default();
            let images = ImageRule::new(
                entry.image_tokens.unwrap_or(base.tokens),
                entry.image_tokens_low.unwrap_or(base.low_detail_tokens),
            );
            let profile = ModelProfile {
                name: name.clone(),
                tokenizer,
                context_limit,
                max_output,
                template,
                images,
            };
            self.insert(profile);
        }
        Ok(())
    }

    /// Adds or replaces one profile.
    pub fn insert(&mut self, profile: ModelProfile) {
        self.models
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&profile.name);
        self.profiles.insert(profile.name.clone(), profile);
    }

    /// Replaces the tokenizer of every profile with one file (the CLI's
    /// `--tokenizer`).
    pub fn set_tokenizer_file(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        let profiles: Vec<_> = self.profiles.values().cloned().collect();
        for mut p in profiles {
            p.tokenizer = TokenizerSource::File(path.clone());
            self.insert(p);
        }
    }

    /// The profile called `name` (exact, then ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Result<&ModelProfile, BuildError> {
        self.profiles
            .get(name)
            .or_else(|| {
                self.profiles
                    .values()
                    .find(|p| p.name.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| BuildError::UnknownModel {
                name: name.to_string(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The names of all profiles, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The ready model for `name`, built on first use and shared afterwards.
    pub fn model(&self, name: &str) -> Result<Model, BuildError> {
        let profile = self.get(name)?;
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = models.get(&profile.name) {
            return Ok(m.clone());
        }
        // Models sharing a tokenizer source share the loaded tokenizer.
        let tokenizer = models
            .values()
            .find(|m| m.profile().tokenizer == profile.tokenizer)
            .map(|m| m.tokenizer().clone());
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => profile.tokenizer.load()?,
        };
        let model = Model::with_cache(profile.clone(), tokenizer, self.cache);
        models.insert(profile.name.clone(), model.clone());
        Ok(model)
    }
}
