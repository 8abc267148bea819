//! Scoring a text against a router's domains, and the explanation of what
//! fired.

use super::*;

impl Router {
    pub(super) fn empty_explanation(&self) -> Explanation {
        Explanation {
            decided_by: None,
            threshold: self.threshold(),
            scores: Vec::new(),
            runner_up: None,
            fired: Vec::new(),
        }
    }

    pub(super) fn scan(&self, text: &str) -> Scan {
        let norm = Normalized::new(text);
        let mut literals = Vec::new();
        for m in self.literals.find_overlapping_iter(norm.compact.as_str()) {
            let id = m.pattern().as_usize();
            if self.literal_word_start[id] && !norm.compact_word_start(m.start()) {
                continue;
            }
            literals.push((id as u32, m.start(), m.end()));
        }
        let patterns = self.patterns.matches(&norm.spaced);
        let similarity = if self.examples.len() == 0 {
            Vec::new()
        } else {
            self.examples
                .best(&similarity::grams(&norm.compact), self.config.domains.len())
        };
        Scan {
            norm,
            literals,
            patterns,
            similarity,
        }
    }

    /// Domains with any points, best first, ties in declaration order.
    pub(super) fn rank(&self, scan: &Scan) -> Vec<(usize, Points)> {
        let n = self.config.domains.len();
        let mut points = vec![Points::default(); n];
        let mut seen: Vec<(u32, u32, bool)> = Vec::new();
        for &(id, _, _) in &scan.literals {
            for r in &self.literal_owners[id as usize] {
                if let Owner::Domain(d) = r.owner {
                    seen.push((d, r.index, false));
                }
            }
        }
        for &id in &scan.patterns {
            for r in &self.pattern_owners[id as usize] {
                if let Owner::Domain(d) = r.owner {
                    seen.push((d, r.index, true));
                }
            }
        }
        seen.sort_unstable();
        seen.dedup();
        for (d, _, is_pattern) in seen {
            let p = &mut points[d as usize];
            if is_pattern {
                p.patterns += 1;
                p.total += PATTERN_POINTS;
            } else {
                p.keywords += 1;
                p.total += KEYWORD_POINTS;
            }
        }
        for (d, &(sim, _)) in scan.similarity.iter().enumerate() {
            points[d].similarity = sim;
            points[d].total += sim * EXAMPLE_POINTS / 1000;
        }
        let mut ranked: Vec<(usize, Points)> = points
            .into_iter()
            .enumerate()
            .filter(|(_, p)| p.total > 0)
            .collect();
        // Domains are distinct, so the order is total and an unstable sort
        // (no scratch allocation) gives the same ranking.
        ranked.sort_unstable_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(&b.0)));
        ranked
    }

    pub(super) fn domain_score(&self, d: usize, p: Points) -> DomainScore {
        DomainScore {
            domain: self.config.domains[d].name.clone(),
            score: f64::from(p.total) / 1000.0,
            keywords: p.keywords as usize,
            patterns: p.patterns as usize,
            similarity: f64::from(p.similarity) / 1000.0,
        }
    }

    pub(super) fn pattern_span(&self, id: u32, norm: &Normalized) -> std::ops::Range<usize> {
        self.patterns
            .regex(id)
            .find(&norm.spaced)
            .map(|m| norm.spaced_origin(m.range()))
            .unwrap_or(0..0)
    }

    pub(super) fn fired_domain_rules(
        &self,
        scan: &Scan,
        src: Source,
        text: &str,
    ) -> Vec<FiredRule> {
        let mut out = Vec::new();
        for &(id, start, end) in &scan.literals {
            for r in &self.literal_owners[id as usize] {
                if matches!(r.owner, Owner::Domain(_)) {
                    out.push(self.fired_rule(
                        r,
                        RuleKind::Keyword,
                        src,
                        text,
                        scan.norm.compact_origin(start..end),
                    ));
                }
            }
        }
        for &id in &scan.patterns {
            for r in &self.pattern_owners[id as usize] {
                if matches!(r.owner, Owner::Domain(_)) {
                    let span = self.pattern_span(id, &scan.norm);
                    out.push(self.fired_rule(r, RuleKind::Pattern, src, text, span));
                }
            }
        }
        for (d, &(sim, example)) in scan.similarity.iter().enumerate() {
            if sim == 0 {
                continue;
            }
            let (_, i) = self.example_owner[example as usize];
            let r = RuleRef {
                owner: Owner::Domain(d as u32),
                index: i,
            };
            let mut rule = self.fired_rule(&r, RuleKind::Example, src, text, 0..text.len());
            rule.similarity = Some(f64::from(sim) / 1000.0);
            out.push(rule);
        }
        out.sort_by_key(|f| (f.start, f.end));
        out
    }

    pub(super) fn fired_rule(
        &self,
        r: &RuleRef,
        kind: RuleKind,
        source: Source,
        text: &str,
        span: std::ops::Range<usize>,
    ) -> FiredRule {
        let i = r.index as usize;
        let (target, rule) = match r.owner {
            Owner::Domain(d) => {
                let dom = &self.config.domains[d as usize];
                let rule = match kind {
                    RuleKind::Keyword => &dom.rules.keywords[i].text,
                    RuleKind::Pattern => &dom.rules.patterns[i].text,
                    RuleKind::Example => &dom.examples[i].text,
                };
                (
                    Target::Domain {
                        domain: dom.name.clone(),
                    },
                    rule.clone(),
                )
            }
            Owner::Filter(d, f) => {
                let dom = &self.config.domains[d as usize];
                let filter = &dom.filters[f as usize];
                let rule = match kind {
                    RuleKind::Pattern => &filter.rules.patterns[i].text,
                    _ => &filter.rules.keywords[i].text,
                };
                (
                    Target::Filter {
                        domain: dom.name.clone(),
                        filter: filter.name.clone(),
                    },
                    rule.clone(),
                )
            }
            Owner::Safety(c) => {
                let rule = match kind {
                    RuleKind::Pattern => &self.safety_patterns[c.index()][i],
                    _ => &self.safety_keywords[c.index()][i],
                };
                (Target::Safety { category: c }, rule.clone())
            }
        };
        FiredRule {
            target,
            kind,
            rule,
            source,
            start: span.start,
            end: span.end,
            text: text.get(span.clone()).unwrap_or_default().to_string(),
            similarity: None,
        }
    }
}
