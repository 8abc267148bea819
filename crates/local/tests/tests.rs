//! Tests against the real SmolLM2 file (generation only with the `engine`
//! feature). Outside CI they skip, saying so, when
//! the file is not in the model cache; under `CI=true` a missing file fails.

#[cfg(feature = "engine")]
mod generation;
#[cfg(feature = "engine")]
mod quality;
mod support;
mod tokenizer;
