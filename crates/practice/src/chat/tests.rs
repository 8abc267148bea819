//! The flow's own checks: the router's verdict, the model's switches, and a
//! streamed call that stops when let go.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::{Message, Profiles};
use sluice_router::Router;

use super::{Blocked, PracticeModel, Refusal, Streamed, check};
use crate::provider::{ModelConfig, Provider, ProviderError, ProviderKind, http_client};

const ROUTER: &str = r#"
    [router]
    id = "shop"
    version = 1

    [[domain]]
    name = "shopping"
    keywords = ["price", "가격"]

    [[domain.filter]]
    name = "Counterfeit"
    keywords = ["짝퉁", "replica"]
"#;

fn router() -> Router {
    Router::from_toml(ROUTER, "shop.toml").expect("router")
}

/// A model whose provider is never called (nothing listens on port 9).
fn model(route_check: bool, auto_trim: bool) -> PracticeModel {
    let mut config = ModelConfig::new(ProviderKind::Openai, "http://127.0.0.1:9");
    config.route_check = route_check;
    config.auto_trim = auto_trim;
    let provider = Provider::with_api_key("m", config, http_client(), None).expect("provider");
    PracticeModel {
        provider: Arc::new(provider),
        model: Arc::new(Profiles::builtin().model("o200k").expect("o200k")),
    }
}

fn blocked() -> Refusal {
    Refusal::Blocked(Blocked {
        domain: "shopping".into(),
        content_filters: vec!["Counterfeit".into()],
        safety: vec![],
    })
}

#[test]
fn the_router_passes_a_prompt_with_its_domain_and_refuses_one_a_filter_hits() {
    assert_eq!(
        check(&router(), "what is the price?"),
        Ok("shopping".into())
    );
    let refusal = check(&router(), "a replica bag, what price?").unwrap_err();
    assert_eq!(refusal, blocked());
    assert_eq!(
        refusal.to_string(),
        "the request was blocked by the router (domain \"shopping\": Counterfeit)"
    );
}

#[test]
fn prepare_follows_the_models_switches() {
    let router = router();
    let history = [
        Message::user("a replica bag?"),
        Message::assistant("no."),
        Message::user("the price of a replica?"),
    ];
    // Neither switch: nothing is checked or trimmed.
    assert_eq!(
        model(false, false).prepare(Some(&router), &history, || unreachable!(
            "counted without auto_trim"
        )),
        Ok(None)
    );
    // The router checks the last user message only.
    assert_eq!(
        model(true, false).prepare(Some(&router), &history, || 10),
        Err(blocked())
    );
    let clean_last = [Message::user("a replica bag?"), Message::user("the price?")];
    assert_eq!(
        model(true, false).prepare(Some(&router), &clean_last, || 10),
        Ok(None)
    );
    // A blank last message, or no router, is not refused.
    let blank_last = [Message::user("a replica bag?"), Message::user("  ")];
    assert_eq!(
        model(true, false).prepare(Some(&router), &blank_last, || 10),
        Ok(None)
    );
    assert_eq!(model(true, false).prepare(None, &history, || 10), Ok(None));
    // auto_trim: the trim, or why the conversation cannot fit.
    let trim = model(false, true)
        .prepare(None, &history, || 10)
        .unwrap()
        .expect("trimmed");
    assert_eq!(trim.kept_indices().count(), 3);
    let too_long = model(false, true).prepare(None, &history, || 10_000_000);
    assert!(matches!(too_long, Err(Refusal::TooLong(_))), "{too_long:?}");
}

/// Sends on its channel when dropped: tells that a call was stopped.
struct Dropped(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_stream_gives_its_pieces_then_its_outcome_once() {
    let mut streamed: Streamed<u32, &str> = Streamed::spawn(2, |tx| async move {
        for i in 0..5 {
            tx.send(i).await.map_err(|_| ProviderError::Transport {
                message: "closed".into(),
            })?;
        }
        Ok("done")
    });
    let mut seen = Vec::new();
    while let Some(piece) = streamed.next().await {
        seen.push(piece);
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(streamed.finish().await.unwrap(), "done");
    assert!(
        streamed.finish().await.is_err(),
        "the outcome is taken once"
    );
}

#[tokio::test]
async fn dropping_a_stream_stops_its_call() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut streamed: Streamed<u32, ()> = Streamed::spawn(1, |pieces| async move {
        let _guard = Dropped(Some(tx));
        pieces.send(1).await.ok();
        // A model that would go on for an hour.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    assert_eq!(streamed.next().await, Some(1));
    drop(streamed);
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the call was stopped within 5 s")
        .expect("its future was dropped");
}

#[tokio::test]
async fn finishing_early_does_not_wait_for_pieces_nobody_reads() {
    // A call with more pieces than the channel holds still ends when its
    // holder asks only for the outcome.
    let mut streamed: Streamed<u32, u32> = Streamed::spawn(1, |tx| async move {
        let mut sent = 0;
        for i in 0..100 {
            if tx.send(i).await.is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), streamed.finish())
        .await
        .expect("finish does not hang");
    assert!(outcome.unwrap() < 100);
}
