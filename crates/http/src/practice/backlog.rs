//! What a streamed practice run has produced and its client not yet taken.
//!
//! A practice run is not held back by a slow client: its result is stored
//! whoever watches, so the models' deltas are always taken at once. What the
//! client cannot take yet waits here, each model's waiting deltas joined into
//! one: the backlog never holds more than the models' texts (each bounded by
//! its `max_reply_bytes`) and one `model_done` per model, however many deltas
//! an upstream splits its answer into.

use std::collections::VecDeque;

use sluice_practice::RunEvent;

/// Events waiting for the client, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    queue: VecDeque<RunEvent>,
}

impl Backlog {
    /// Queues an event. A delta joins its model's delta already waiting, if
    /// any: there is at most one, since a model's `model_done` follows all of
    /// its deltas, and deltas of different models carry their model's name.
    pub(crate) fn push(&mut self, event: RunEvent) {
        if let RunEvent::Token { model_name, text } = &event {
            let waiting = self.queue.iter_mut().find_map(|queued| match queued {
                RunEvent::Token {
                    model_name: queued_model,
                    text,
                } if queued_model == model_name => Some(text),
                _ => None,
            });
            if let Some(waiting) = waiting {
                waiting.push_str(text);
                return;
            }
        }
        self.queue.push_back(event);
    }

    /// The oldest event waiting.
    pub(crate) fn pop(&mut self) -> Option<RunEvent> {
        self.queue.pop_front()
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Forgets everything waiting (the client went away).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(model: &str, text: &str) -> RunEvent {
        RunEvent::Token {
            model_name: model.into(),
            text: text.into(),
        }
    }

    fn done(model: &str) -> RunEvent {
        RunEvent::ModelDone {
            model_name: model.into(),
            error: None,
            finish_reason: Some("stop".into()),
        }
    }

    #[test]
    fn waiting_deltas_join_per_model_and_keep_each_models_order() {
        let mut backlog = Backlog::default();
        for event in [
            token("a", "1"),
            token("b", "x"),
            token("a", "2"),
            token("b", "y"),
            done("b"),
            token("a", "3"),
            done("a"),
        ] {
            backlog.push(event);
        }
        let mut out = Vec::new();
        while let Some(event) = backlog.pop() {
            out.push(event);
        }
        assert_eq!(
            out,
            [token("a", "123"), token("b", "xy"), done("b"), done("a")]
        );
    }
}
