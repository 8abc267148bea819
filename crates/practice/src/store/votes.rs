//! Blind comparisons: concealing a blind turn's models until its vote, votes
//! (best answer, tie, all bad, skip), ratings of single answers, and the votes
//! read back for the leaderboard.
//!
//! A blind turn is an ordinary turn whose settings carry `"blind": true` and
//! `"blind_order"`: the model names in label order (`A` first), drawn at random
//! when the turn was run. Its results are shown in label order; until the turn
//! has a vote (a skip counts), each result's `model_name` is its label, its
//! `session_model_id` is 0 and `request` is `null` (what was sent names nothing,
//! but its window limit would tell one model's profile from another's), and the
//! settings lose `blind_order` and `model_names`.

use serde::Serialize;
use serde_json::Value;

use super::{Store, StoredTurn, from_json_text, now, on_pool, to_json_text, write_tx};
use crate::contract::TurnSettings;
use crate::error::{PracticeError, Result};
use crate::leaderboard::{self, Leaderboard, Options, Outcome, VoteOutcome};
use crate::validate::{Checker, at};

/// The labels of a blind turn's answers, in order: `A`, `B`, … (one per model).
pub fn blind_labels(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| char::from(b'A' + (i % 26) as u8).to_string())
        .collect()
}

/// The model names of a blind turn in label order, or `None` for an
/// ordinary turn.
fn blind_order(settings: &TurnSettings) -> Option<Vec<String>> {
    if !settings.blind {
        return None;
    }
    settings.blind_order.clone()
}

/// Puts a blind turn's results in label order and labels them; unless
/// `revealed`, hides which model gave which answer (see the module docs).
/// An ordinary turn is left as it is.
pub fn conceal_turn(turn: &mut StoredTurn, revealed: bool) {
    let Some(order) = blind_order(&turn.settings) else {
        return;
    };
    let labels = blind_labels(order.len());
    let position = |name: &str| order.iter().position(|m| m == name).unwrap_or(usize::MAX);
    turn.results
        .sort_by_key(|r| (position(&r.model_name), r.response_id));
    for result in &mut turn.results {
        let label = labels
            .get(position(&result.model_name))
            .cloned()
            .unwrap_or_else(|| "?".to_string());
        if !revealed {
            result.model_name = label.clone();
            result.session_model_id = 0;
            result.request = None;
            // Exactly one answer is primary, and it is the first model asked
            // for: that would give one name away.
            result.is_primary = false;
        }
        result.label = Some(label);
    }
    if !revealed {
        turn.settings.blind_order = None;
        turn.settings.model_names = labels;
    }
    turn.revealed = Some(revealed);
}

/// A student's verdict on a blind turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The answer with this label is the best.
    Best(String),
    /// All answers are as good.
    Tie,
    /// All answers are bad.
    AllBad,
    /// No verdict; the names are shown all the same.
    Skip,
}

/// The verdicts a vote may give.
pub const VERDICTS: [&str; 4] = ["best", "tie", "all_bad", "skip"];
/// The labels a blind turn's answers may have (one per model, at most
/// [`MAX_MODELS`](crate::MAX_MODELS)).
pub const LABELS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];
/// Longest comment of a rating, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

impl Verdict {
    /// A vote's body: `{"verdict": "best" | "tie" | "all_bad" | "skip",
    /// "label": "A"…"H"}`, the label required with `best` and refused
    /// otherwise (422 in FastAPI's shape).
    pub fn parse(body: &Value) -> Result<Verdict> {
        let mut check = Checker::new();
        let loc = vec![Value::from("body")];
        let Some(map) = check.object(body, &loc) else {
            check.finish()?;
            unreachable!("an error was recorded");
        };
        check.no_unknown(map, &["verdict", "label"], &loc);
        let verdict = check.choice(map, "verdict", &loc, &VERDICTS);
        let verdict = check.required(
            verdict,
            map.get("verdict").is_some_and(|v| !v.is_null()),
            at(&loc, "verdict"),
        );
        let label = check.choice(map, "label", &loc, &LABELS);
        match (verdict, label) {
            (Some("best"), None) if map.get("label").is_none_or(Value::is_null) => {
                check.error(
                    at(&loc, "label"),
                    "missing",
                    "Field required with verdict 'best'",
                );
            }
            (Some(v), Some(_)) if v != "best" => check.error(
                at(&loc, "label"),
                "value_error",
                "Value error, a label goes only with verdict 'best'",
            ),
            _ => {}
        }
        check.finish()?;
        Ok(match verdict.expect("checked") {
            "best" => Verdict::Best(label.expect("checked").to_string()),
            "tie" => Verdict::Tie,
            "all_bad" => Verdict::AllBad,
            _ => Verdict::Skip,
        })
    }

    /// `best`, `tie`, `all_bad` or `skip`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Best(_) => "best",
            Verdict::Tie => "tie",
            Verdict::AllBad => "all_bad",
            Verdict::Skip => "skip",
        }
    }
}

/// A label and the model behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelledModel {
    /// `A`, `B`, ….
    pub label: String,
    /// The logical model name.
    pub model_name: String,
}

/// A stored vote, with the names it reveals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoteReveal {
    /// The vote's id.
    pub vote_id: i64,
    /// The turn voted on.
    pub turn_id: i64,
    /// `best`, `tie`, `all_bad` or `skip`.
    pub verdict: String,
    /// The best answer's label (for `best`).
    pub best_label: Option<String>,
    /// The best answer's model (for `best`).
    pub best_model: Option<String>,
    /// Every label with its model, in label order.
    pub labels: Vec<LabelledModel>,
    /// The router's domain of the prompt (`""` when none or no router).
    pub domain: String,
    /// When the vote was cast.
    pub created_at: String,
}

/// A rating of one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rating {
    /// The rating's id.
    pub rating_id: i64,
    /// The answer rated.
    pub response_id: i64,
    /// `up` or `down`.
    pub value: &'static str,
    /// The student's comment.
    pub comment: Option<String>,
    /// When it was (last) given.
    pub created_at: String,
}

/// A rating's body: `{"value": "up" | "down", "comment": text or null}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingInput {
    /// Up (`true`) or down.
    pub up: bool,
    /// The comment (trimmed; empty means none).
    pub comment: Option<String>,
}

impl RatingInput {
    /// Checks a rating's body (422 in FastAPI's shape).
    pub fn parse(body: &Value) -> Result<RatingInput> {
        let mut check = Checker::new();
        let loc = vec![Value::from("body")];
        let Some(map) = check.object(body, &loc) else {
            check.finish()?;
            unreachable!("an error was recorded");
        };
        check.no_unknown(map, &["value", "comment"], &loc);
        let value = check.choice(map, "value", &loc, &["up", "down"]);
        let value = check.required(
            value,
            map.get("value").is_some_and(|v| !v.is_null()),
            at(&loc, "value"),
        );
        // The bound is on the text as sent (as the OpenAPI document says);
        // surrounding white space is dropped after.
        let comment = check
            .string(map, "comment", &loc, 0..=MAX_COMMENT_CHARS, false)
            .map(|c| c.trim().to_string());
        check.finish()?;
        Ok(RatingInput {
            up: value == Some("up"),
            comment: comment.filter(|c| !c.is_empty()),
        })
    }
}

/// Which votes a leaderboard counts; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VoteFilter {
    /// Only this class's votes (`None`: every class, for an administrator).
    pub class_id: Option<i64>,
    /// Only prompts the router put in this domain (`""` for none).
    pub domain: Option<String>,
    /// Only turns run with this agent.
    pub agent_id: Option<i64>,
    /// Only turns with this style preset.
    pub style_preset: Option<String>,
}

/// The values the votes of a class can be filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VoteFacets {
    /// Domains seen (`""` for prompts with no domain).
    pub domains: Vec<String>,
    /// Agents seen.
    pub agent_ids: Vec<i64>,
    /// Style presets seen.
    pub style_presets: Vec<String>,
}

/// A leaderboard with the filter it was computed under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassLeaderboard {
    /// The filter applied.
    pub filter: VoteFilter,
    /// What else the votes could be filtered by.
    pub facets: VoteFacets,
    /// Scores, intervals, counts and the win-rate matrix.
    #[serde(flatten)]
    pub leaderboard: Leaderboard,
}

/// The condition of a vote query over `$1..=$4` (class, domain, agent, style).
const VOTE_FILTER: &str = "($1 IS NULL OR class_id = $1) AND ($2 IS NULL OR domain = $2) \
     AND ($3 IS NULL OR agent_id = $3) AND ($4 IS NULL OR style_preset = $4)";

impl Store {
    /// Records the verdict of the session owner on a blind turn and reveals its
    /// models. One vote per turn: a second is a conflict (409).
    pub async fn vote(
        &self,
        user_id: i64,
        session_id: i64,
        turn_id: i64,
        verdict: &Verdict,
    ) -> Result<VoteReveal> {
        let at = now();
        let reveal = write_tx!(self, tx => {
            let row: Option<(i64, String, String)> = sqlx::query_as(
                "SELECT s.class_id, t.prompt_text, t.settings FROM turns t \
                 JOIN sessions s ON s.id = t.session_id \
                 WHERE t.id = $1 AND t.session_id = $2 AND s.user_id = $3",
            )
            .bind(turn_id)
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (class_id, prompt_text, settings) = row.ok_or(PracticeError::NotFound("turn"))?;
            let settings: TurnSettings = from_json_text(&settings)?;
            let order = blind_order(&settings).ok_or_else(|| {
                PracticeError::BadRequest(format!(
                    "turn {turn_id} is not blind: only blind comparisons take votes \
                     (run with \"blind\": true)"
                ))
            })?;
            let labels = blind_labels(order.len());
            let (best_label, best_model) = match verdict {
                Verdict::Best(label) => match labels.iter().position(|l| l == label) {
                    Some(i) => (Some(label.clone()), Some(order[i].clone())),
                    None => {
                        return Err(PracticeError::BadRequest(format!(
                            "label {label:?} is not an answer of this turn (labels: {})",
                            labels.join(", ")
                        )));
                    }
                },
                _ => (None, None),
            };
            let domain = settings.domain.clone().flatten().unwrap_or_default();
            let style = settings.style_preset.to_string();
            let vote_id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO votes (turn_id, session_id, class_id, user_id, verdict, best_label, \
                 best_model, models, prompt_text, agent_id, style_preset, domain, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (turn_id) DO NOTHING RETURNING id",
            )
            .bind(turn_id)
            .bind(session_id)
            .bind(class_id)
            .bind(user_id)
            .bind(verdict.as_str())
            .bind(&best_label)
            .bind(&best_model)
            .bind(to_json_text(&order))
            .bind(&prompt_text)
            .bind(settings.agent_id)
            .bind(&style)
            .bind(&domain)
            .bind(&at)
            .fetch_optional(&mut *tx)
            .await?;
            let vote_id = vote_id.ok_or_else(|| {
                PracticeError::Conflict(format!("turn {turn_id} already has a vote"))
            })?;
            VoteReveal {
                vote_id,
                turn_id,
                verdict: verdict.as_str().to_string(),
                best_label,
                best_model,
                labels: labels
                    .into_iter()
                    .zip(order)
                    .map(|(label, model_name)| LabelledModel { label, model_name })
                    .collect(),
                domain,
                created_at: at.clone(),
            }
        });
        Ok(reveal)
    }

    /// Rates one answer of the user's own session, up (`true`) or down, with
    /// an optional comment; rating it again replaces the rating.
    pub async fn rate(
        &self,
        user_id: i64,
        response_id: i64,
        up: bool,
        comment: Option<&str>,
    ) -> Result<Rating> {
        let at = now();
        let id = write_tx!(self, tx => {
            let row: Option<(i64, String)> = sqlx::query_as(
                "SELECT s.class_id, r.model_name FROM results r \
                 JOIN turns t ON t.id = r.turn_id JOIN sessions s ON s.id = t.session_id \
                 WHERE r.id = $1 AND s.user_id = $2",
            )
            .bind(response_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (class_id, model_name) = row.ok_or(PracticeError::NotFound("result"))?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO ratings (result_id, user_id, class_id, model_name, value, comment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (result_id, user_id) DO UPDATE SET value = excluded.value, \
                 comment = excluded.comment, created_at = excluded.created_at RETURNING id",
            )
            .bind(response_id)
            .bind(user_id)
            .bind(class_id)
            .bind(model_name)
            .bind(if up { 1i64 } else { -1 })
            .bind(comment)
            .bind(&at)
            .fetch_one(&mut *tx)
            .await?;
            id
        });
        Ok(Rating {
            rating_id: id,
            response_id,
            value: if up { "up" } else { "down" },
            comment: comment.map(str::to_string),
            created_at: at,
        })
    }

    /// The turn ids of a session that have a vote (their models are shown).
    pub(crate) async fn voted_turns(&self, session_id: i64) -> Result<Vec<i64>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT turn_id FROM votes WHERE session_id = $1 AND turn_id IS NOT NULL",
        )
        .bind(session_id)
        .fetch_all(pool)
        .await?))
    }

    /// A session the user owns, as the user may see it: blind turns without a
    /// vote have their models concealed ([`conceal_turn`]).
    pub async fn session_view(
        &self,
        user_id: i64,
        session_id: i64,
    ) -> Result<super::SessionDetail> {
        let mut detail = self.session(user_id, session_id).await?;
        let voted = self.voted_turns(session_id).await?;
        for turn in &mut detail.history {
            conceal_turn(turn, voted.contains(&turn.turn_id));
        }
        Ok(detail)
    }

    /// The votes that match `filter`, oldest first, as the leaderboard reads
    /// them.
    pub async fn vote_outcomes(&self, filter: &VoteFilter) -> Result<Vec<VoteOutcome>> {
        let sql = format!(
            "SELECT verdict, best_model, models FROM votes WHERE {VOTE_FILTER} ORDER BY id"
        );
        let rows: Vec<(String, Option<String>, String)> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(filter.class_id)
            .bind(&filter.domain)
            .bind(filter.agent_id)
            .bind(&filter.style_preset)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|(verdict, best, models)| {
                let outcome = match (verdict.as_str(), best) {
                    ("best", Some(model)) => Outcome::Best(model),
                    ("tie", _) => Outcome::Tie,
                    ("all_bad", _) => Outcome::AllBad,
                    ("skip", _) => Outcome::Skip,
                    (other, _) => {
                        return Err(PracticeError::Corrupt(format!("vote verdict {other:?}")));
                    }
                };
                Ok(VoteOutcome {
                    models: from_json_text(&models)?,
                    outcome,
                })
            })
            .collect()
    }

    /// The domains, agents and styles among the votes of a class (`None`:
    /// every class).
    pub async fn vote_facets(&self, class_id: Option<i64>) -> Result<VoteFacets> {
        let (domains, agent_ids, style_presets) = on_pool!(self, pool => (
            sqlx::query_scalar(
                "SELECT DISTINCT domain FROM votes WHERE ($1 IS NULL OR class_id = $1) ORDER BY domain",
            )
            .bind(class_id)
            .fetch_all(pool)
            .await?,
            sqlx::query_scalar(
                "SELECT DISTINCT agent_id FROM votes WHERE ($1 IS NULL OR class_id = $1) \
                 AND agent_id IS NOT NULL ORDER BY agent_id",
            )
            .bind(class_id)
            .fetch_all(pool)
            .await?,
            sqlx::query_scalar(
                "SELECT DISTINCT style_preset FROM votes WHERE ($1 IS NULL OR class_id = $1) \
                 ORDER BY style_preset",
            )
            .bind(class_id)
            .fetch_all(pool)
            .await?,
        ));
        Ok(VoteFacets {
            domains,
            agent_ids,
            style_presets,
        })
    }

    /// The leaderboard of the votes matching `filter`.
    pub async fn leaderboard(
        &self,
        filter: &VoteFilter,
        options: &Options,
    ) -> Result<ClassLeaderboard> {
        let votes = self.vote_outcomes(filter).await?;
        let facets = self.vote_facets(filter.class_id).await?;
        let options = *options;
        // The bootstrap is CPU work (a thousand fits): off the async threads.
        let leaderboard =
            tokio::task::spawn_blocking(move || leaderboard::leaderboard(&votes, &options))
                .await
                .map_err(|e| PracticeError::Corrupt(format!("leaderboard task failed: {e}")))?;
        Ok(ClassLeaderboard {
            filter: filter.clone(),
            facets,
            leaderboard,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_comment_is_bounded_as_sent_and_trimmed_after() {
        let padded = format!("ok{}", "\t".repeat(MAX_COMMENT_CHARS));
        assert!(RatingInput::parse(&json!({"value": "up", "comment": padded})).is_err());
        let rating = RatingInput::parse(&json!({"value": "down", "comment": "  fine  "})).unwrap();
        assert_eq!(rating.comment.as_deref(), Some("fine"));
        assert!(!rating.up);
        let blank = RatingInput::parse(&json!({"value": "up", "comment": "   "})).unwrap();
        assert_eq!(blank.comment, None);
    }

    #[test]
    fn a_label_goes_with_best_only() {
        assert_eq!(
            Verdict::parse(&json!({"verdict": "best", "label": "C"})).unwrap(),
            Verdict::Best("C".into())
        );
        assert!(Verdict::parse(&json!({"verdict": "best"})).is_err());
        assert!(Verdict::parse(&json!({"verdict": "tie", "label": "A"})).is_err());
        assert!(Verdict::parse(&json!({"verdict": "best", "label": "I"})).is_err());
        assert_eq!(
            Verdict::parse(&json!({"verdict": "skip", "label": null})).unwrap(),
            Verdict::Skip
        );
    }
}
