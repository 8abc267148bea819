//! Blind turns, votes and ratings in the store, on every backend.

use serde_json::json;
use sluice_practice::leaderboard::{Options, Outcome};
use sluice_practice::prompt::effective_params;
use sluice_practice::{
    ClassRole, NewResult, NewSession, NewTurn, PracticeError, ResultUsage, Store, TurnSettings,
    Verdict, VoteFilter,
};

use crate::backends::stores;

fn result(model: &str, primary: bool) -> NewResult {
    NewResult {
        model_name: model.into(),
        is_primary: primary,
        response_text: Some(format!("answer of {model}")),
        error: None,
        token_usage: ResultUsage {
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: Some(7),
            ..ResultUsage::default()
        },
        latency_ms: 12,
        generation_params: effective_params(&Default::default(), None, &Default::default(), 4096),
        request: Some(
            serde_json::from_value(json!({"messages": [{"role": "user", "content": "q"}],
                "max_tokens": 512, "seed": null, "temperature": 0.7, "top_p": 1.0}))
            .unwrap(),
        ),
        finish_reason: Some("stop".into()),
        upstream_id: None,
    }
}

/// A blind turn whose label order is `order` (as a run stores it).
fn blind_turn(prompt: &str, order: &[&str], domain: &str) -> NewTurn {
    NewTurn {
        prompt_text: prompt.into(),
        settings: TurnSettings {
            model_names: vec!["a".into(), "b".into(), "c".into()],
            style_preset: "creative",
            domain: Some(Some(domain.into())),
            blind: true,
            blind_order: Some(order.iter().map(|m| m.to_string()).collect()),
            ..TurnSettings::default()
        },
        results: vec![result("a", true), result("b", false), result("c", false)],
    }
}

async fn setup(store: &Store) -> (i64, i64, i64) {
    let (teacher, _) = store.create_user("teacher").await.unwrap();
    let (student, _) = store.create_user("student").await.unwrap();
    let (other, _) = store.create_user("other").await.unwrap();
    let class = store
        .create_class("c", teacher.id, &["a".into(), "b".into(), "c".into()], "a")
        .await
        .unwrap();
    for user in [student.id, other.id] {
        store
            .add_member(class.id, user, ClassRole::Student)
            .await
            .unwrap();
    }
    (class.id, student.id, other.id)
}

fn session(user_id: i64, class_id: i64) -> NewSession {
    NewSession {
        user_id,
        class_id,
        project_id: None,
        agent_id: None,
        title: Some("t".into()),
        knowledge_ids: vec![],
    }
}

#[tokio::test]
async fn a_blind_turn_names_its_models_only_after_its_vote() {
    for store in stores().await {
        let (class_id, me, other) = setup(&store).await;
        let turn = blind_turn("which is best?", &["c", "a", "b"], "weather");
        let (session_id, stored) = store
            .create_session(&session(me, class_id), &turn)
            .await
            .unwrap();
        let view = store.session_view(me, session_id).await.unwrap();
        let shown = &view.history[0];
        assert_eq!(shown.revealed, Some(false));
        let names: Vec<_> = shown
            .results
            .iter()
            .map(|r| r.model_name.as_str())
            .collect();
        assert_eq!(names, ["A", "B", "C"], "labels stand in for the names");
        assert_eq!(
            shown.results[0].response_text.as_deref(),
            Some("answer of c")
        );
        assert!(
            shown
                .results
                .iter()
                .all(|r| r.session_model_id == 0 && r.request.is_none() && !r.is_primary)
        );
        assert!(shown.settings.blind_order.is_none());
        assert_eq!(shown.settings.model_names, ["A", "B", "C"]);
        let text = serde_json::to_string(&view.history).unwrap();
        assert!(!text.contains("\"a\"") && !text.contains("\"b\""), "{text}");

        // Only the owner votes; a label that is not there is refused.
        assert!(matches!(
            store
                .vote(other, session_id, stored.turn_id, &Verdict::Tie)
                .await,
            Err(PracticeError::NotFound(_))
        ));
        assert!(matches!(
            store
                .vote(me, session_id, stored.turn_id, &Verdict::Best("D".into()))
                .await,
            Err(PracticeError::BadRequest(_))
        ));
        let reveal = store
            .vote(me, session_id, stored.turn_id, &Verdict::Best("B".into()))
            .await
            .unwrap();
        assert_eq!(reveal.best_model.as_deref(), Some("a"));
        assert_eq!(reveal.domain, "weather");
        let labels: Vec<_> = reveal
            .labels
            .iter()
            .map(|l| (l.label.as_str(), l.model_name.as_str()))
            .collect();
        assert_eq!(labels, [("A", "c"), ("B", "a"), ("C", "b")]);
        assert!(matches!(
            store
                .vote(me, session_id, stored.turn_id, &Verdict::Skip)
                .await,
            Err(PracticeError::Conflict(_))
        ));
        let view = store.session_view(me, session_id).await.unwrap();
        let shown = &view.history[0];
        assert_eq!(shown.revealed, Some(true));
        let names: Vec<_> = shown
            .results
            .iter()
            .map(|r| (r.label.as_deref().unwrap(), r.model_name.as_str()))
            .collect();
        assert_eq!(names, [("A", "c"), ("B", "a"), ("C", "b")]);
        assert!(shown.results.iter().any(|r| r.is_primary));

        // An ordinary turn takes no vote and is shown as it is.
        let plain = NewTurn {
            prompt_text: "plain".into(),
            settings: TurnSettings::default(),
            results: vec![result("a", true), result("b", false)],
        };
        let next = store.append_turn(me, session_id, &plain).await.unwrap();
        assert!(matches!(
            store
                .vote(me, session_id, next.turn_id, &Verdict::Tie)
                .await,
            Err(PracticeError::BadRequest(_))
        ));
        let view = store.session_view(me, session_id).await.unwrap();
        assert_eq!(view.history[1].revealed, None);
        assert_eq!(view.history[1].results[0].model_name, "a");

        // Ratings: the owner's, replaced when given again.
        let response_id = next.results[1].response_id;
        let first = store
            .rate(me, response_id, true, Some("clear"))
            .await
            .unwrap();
        let again = store.rate(me, response_id, false, None).await.unwrap();
        assert_eq!(first.rating_id, again.rating_id);
        assert_eq!(again.value, "down");
        assert!(matches!(
            store.rate(other, response_id, true, None).await,
            Err(PracticeError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn the_leaderboard_reads_the_votes_of_one_class_with_filters() {
    for store in stores().await {
        let (class_id, me, _) = setup(&store).await;
        let (teacher2, _) = store.create_user("teacher2").await.unwrap();
        let elsewhere = store
            .create_class("d", teacher2.id, &["a".into(), "b".into()], "a")
            .await
            .unwrap();
        store
            .add_member(elsewhere.id, me, ClassRole::Student)
            .await
            .unwrap();
        let cast = |class: i64, prompt: &'static str, domain: &'static str, verdict: Verdict| {
            let store = store.clone();
            async move {
                let (session_id, stored) = store
                    .create_session(
                        &session(me, class),
                        &blind_turn(prompt, &["a", "b", "c"], domain),
                    )
                    .await
                    .unwrap();
                store
                    .vote(me, session_id, stored.turn_id, &verdict)
                    .await
                    .unwrap();
            }
        };
        // In this class: A ("a") wins twice in weather, one tie in sports, one skip.
        cast(class_id, "w1", "weather", Verdict::Best("A".into())).await;
        cast(class_id, "w2", "weather", Verdict::Best("A".into())).await;
        cast(class_id, "s1", "sports", Verdict::AllBad).await;
        cast(class_id, "s2", "sports", Verdict::Skip).await;
        // Elsewhere: C ("c") wins.
        cast(elsewhere.id, "x", "weather", Verdict::Best("C".into())).await;

        let mine = VoteFilter {
            class_id: Some(class_id),
            ..VoteFilter::default()
        };
        let outcomes = store.vote_outcomes(&mine).await.unwrap();
        assert_eq!(outcomes.len(), 4);
        assert_eq!(outcomes[0].outcome, Outcome::Best("a".into()));
        assert_eq!(outcomes[0].models, ["a", "b", "c"]);
        let weather = VoteFilter {
            domain: Some("weather".into()),
            ..mine.clone()
        };
        assert_eq!(store.vote_outcomes(&weather).await.unwrap().len(), 2);
        let everywhere = store.vote_outcomes(&VoteFilter::default()).await.unwrap();
        assert_eq!(everywhere.len(), 5);
        let creative = VoteFilter {
            style_preset: Some("accurate".into()),
            ..mine.clone()
        };
        assert!(store.vote_outcomes(&creative).await.unwrap().is_empty());

        let board = store
            .leaderboard(
                &mine,
                &Options {
                    resamples: 50,
                    ..Options::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(board.leaderboard.rows[0].model_name, "a");
        assert_eq!(board.leaderboard.total_votes, 4);
        assert_eq!(board.leaderboard.skipped, 1);
        assert_eq!(board.facets.domains, ["sports", "weather"]);
        assert_eq!(board.facets.style_presets, ["creative"]);
    }
}
