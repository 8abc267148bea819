//! Building a router: loading its TOML and compiling its rules into the
//! automata and indexes that routing reads.

use super::*;

impl Router {
    /// Loads a router from TOML text with the built-in model profiles. `file`
    /// names the text in error messages; the router id and version must be in
    /// the text's `[router]` table.
    ///
    /// ```
    /// let router = sluice_router::Router::from_toml(
    ///     r#"
    ///     [router]
    ///     id = "demo"
    ///     version = 1
    ///     [[domain]]
    ///     name = "weather"
    ///     keywords = ["weather", "날씨"]
    ///     "#,
    ///     "demo.toml",
    /// )
    /// .unwrap();
    /// assert_eq!(router.domains().collect::<Vec<_>>(), ["weather"]);
    /// ```
    pub fn from_toml(text: &str, file: &str) -> Result<Router, BuildError> {
        Self::from_toml_with(text, file, &PROFILES)
    }

    /// Like [`Router::from_toml`], resolving the model name in `profiles`.
    pub fn from_toml_with(
        text: &str,
        file: &str,
        profiles: &Profiles,
    ) -> Result<Router, BuildError> {
        Self::load(text, file, &Origin::default(), profiles)
    }

    /// Loads `routers/<id>/<version>.toml`: the id and version come from the
    /// path, and must agree with the file's `[router]` table where it has them.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Router, BuildError> {
        Self::from_file_with(path.as_ref(), &PROFILES)
    }

    /// Like [`Router::from_file`], resolving the model name in `profiles`.
    pub fn from_file_with(path: &Path, profiles: &Profiles) -> Result<Router, BuildError> {
        let text = std::fs::read_to_string(path).map_err(|e| BuildError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::load(
            &text,
            &path.display().to_string(),
            &origin_of(path),
            profiles,
        )
    }

    pub(crate) fn load(
        text: &str,
        file: &str,
        origin: &Origin,
        profiles: &Profiles,
    ) -> Result<Router, BuildError> {
        let config = config::parse(text, file, origin)?;
        let model = profiles.model(&config.model).map_err(|e| {
            BuildError::Invalid(vec![Problem {
                file: file.to_string(),
                line: config.model_line,
                reason: e.to_string(),
            }])
        })?;
        Self::compile(config, model)
    }

    pub(super) fn compile(mut config: Config, model: Model) -> Result<Router, BuildError> {
        let token_limit = config
            .token_limit
            .unwrap_or(model.profile().context_limit as usize);
        let threshold = (config.threshold * 1000.0).round() as u32;

        let mut safety_keywords: [Vec<String>; 2] = Default::default();
        let mut safety_patterns: [Vec<String>; 2] = Default::default();
        for c in Category::ALL {
            let builtin = builtin_rules(c);
            let extra = &config.safety[c.index()];
            safety_keywords[c.index()] = builtin
                .keywords
                .iter()
                .map(|s| s.to_string())
                .chain(extra.keywords.iter().map(|r| r.text.clone()))
                .collect();
            safety_patterns[c.index()] = builtin
                .patterns
                .iter()
                .map(|s| s.to_string())
                .chain(extra.patterns.iter().map(|r| r.text.clone()))
                .collect();
        }

        // Every literal and pattern, deduplicated, with all of its owners.
        let mut literal_ids: FxHashMap<String, usize> = FxHashMap::default();
        let mut literal_texts: Vec<String> = Vec::new();
        let mut literal_owners: Vec<Vec<RuleRef>> = Vec::new();
        let mut pattern_ids: FxHashMap<String, usize> = FxHashMap::default();
        let mut pattern_texts: Vec<String> = Vec::new();
        let mut pattern_hirs: Vec<Hir> = Vec::new();
        let mut pattern_owners: Vec<Vec<RuleRef>> = Vec::new();
        let mut add_literal = |text: &str, owner: Owner, index: usize| {
            let key = normalize::compact(text);
            let id = *literal_ids.entry(key.clone()).or_insert_with(|| {
                literal_texts.push(key);
                literal_owners.push(Vec::new());
                literal_texts.len() - 1
            });
            literal_owners[id].push(RuleRef {
                owner,
                index: index as u32,
            });
        };
        // A pattern comes parsed from the config (taken: the router keeps only
        // its text) or, built in, is parsed here.
        let mut add_pattern = |text: &str, hir: Option<Hir>, owner: Owner, index: usize| {
            let id = *pattern_ids.entry(text.to_string()).or_insert_with(|| {
                pattern_texts.push(text.to_string());
                pattern_hirs.push(hir.unwrap_or_else(|| {
                    patterns::check(text).expect("built-in patterns are valid (tested)")
                }));
                pattern_owners.push(Vec::new());
                pattern_texts.len() - 1
            });
            pattern_owners[id].push(RuleRef {
                owner,
                index: index as u32,
            });
        };
        let mut examples = ExampleIndex::default();
        let mut example_owner = Vec::new();
        for (d, domain) in config.domains.iter_mut().enumerate() {
            let owner = Owner::Domain(d as u32);
            for (i, k) in domain.rules.keywords.iter().enumerate() {
                add_literal(&k.text, owner, i);
            }
            for (i, p) in domain.rules.patterns.iter_mut().enumerate() {
                add_pattern(&p.text, p.hir.take(), owner, i);
            }
            for (i, e) in domain.examples.iter().enumerate() {
                examples.add(d, &normalize::compact(&e.text));
                example_owner.push((d as u32, i as u32));
            }
            for (f, filter) in domain.filters.iter_mut().enumerate() {
                let owner = Owner::Filter(d as u32, f as u32);
                for (i, k) in filter.rules.keywords.iter().enumerate() {
                    add_literal(&k.text, owner, i);
                }
                for (i, p) in filter.rules.patterns.iter_mut().enumerate() {
                    add_pattern(&p.text, p.hir.take(), owner, i);
                }
            }
        }
        for c in Category::ALL {
            for (i, k) in safety_keywords[c.index()].iter().enumerate() {
                add_literal(k, Owner::Safety(c), i);
            }
            // Built-in patterns first, then the file's, as `safety_patterns` lists them.
            let builtin = builtin_rules(c).patterns.len();
            let extra = &mut config.safety[c.index()].patterns;
            for (i, p) in safety_patterns[c.index()].iter().enumerate() {
                let hir = i.checked_sub(builtin).and_then(|j| extra[j].hir.take());
                add_pattern(p, hir, Owner::Safety(c), i);
            }
        }

        let invalid = |reason: String| {
            BuildError::Invalid(vec![Problem {
                file: config.file.clone(),
                line: 0,
                reason,
            }])
        };
        let literal_word_start = literal_texts
            .iter()
            .map(|t| t.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric))
            .collect();
        // A contiguous NFA, not the DFA `aho-corasick` picks for a few hundred
        // literals or fewer: the texts searched are a query's few hundred
        // bytes, and building the DFA was a large part of loading the sample
        // router for one `sluice route` (`perf record`).
        let literals = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::Standard)
            .build(&literal_texts)
            .map_err(|e| invalid(format!("keywords cannot be compiled: {e}")))?;
        let patterns = PatternIndex::new(pattern_texts, &pattern_hirs)
            .map_err(|e| invalid(format!("patterns together cannot be compiled: {e}")))?;

        Ok(Router {
            config,
            model,
            token_limit,
            threshold,
            safety_keywords,
            safety_patterns,
            literals,
            literal_owners,
            literal_word_start,
            patterns,
            pattern_owners,
            examples,
            example_owner,
        })
    }
}
