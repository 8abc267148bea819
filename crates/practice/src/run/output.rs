//! What a run hands back: the events of a streamed run, the response when it
//! ends, and why the router refused a prompt.

use serde::Serialize;

use crate::contract::ModelError;
use crate::store::StoredResult;

/// Something that happened during a streamed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// Every check passed (membership, ids, models, the router) and the models
    /// are being called. Until this event, a failure means nothing was created.
    Started {
        /// The models called, in the order of the results.
        model_names: Vec<String>,
    },
    /// A piece of one model's answer.
    Token {
        /// The logical model name.
        model_name: String,
        /// The text delta.
        text: String,
    },
    /// One model finished (its result is not stored yet).
    ModelDone {
        /// The logical model name.
        model_name: String,
        /// `None` when it succeeded.
        error: Option<ModelError>,
        /// Why it stopped: the upstream's reason, or `stopped` when stopped
        /// by the client.
        finish_reason: Option<String>,
    },
}

/// The answer to a run or a next turn: the seed's response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResponse {
    /// The session.
    pub session_id: i64,
    /// The session's class (not part of the answer's body).
    #[serde(skip)]
    pub class_id: i64,
    /// The prompt as stored.
    pub prompt_text: String,
    /// One per model, in the order of `model_names`; the first is primary.
    pub results: Vec<StoredResult>,
    /// The session's title.
    pub session_title: Option<String>,
    /// The turn's id (votes name it).
    pub turn_id: i64,
    /// True for a blind comparison: `results` are in label order, each with
    /// its `label`, and name no model until the turn has a vote.
    pub blind: bool,
    /// The model of each result, in the order of `results`, even when the
    /// answer conceals it: for the server's own accounting, never sent.
    #[serde(skip)]
    pub model_names: Vec<String>,
}
