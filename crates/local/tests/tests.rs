//! Tests against the real SmolLM2 file. Outside CI they skip, saying so, when
//! the file is not in the model cache; under `CI=true` a missing file fails.

mod generation;
mod support;
mod tokenizer;
