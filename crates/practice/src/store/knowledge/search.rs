//! Searching knowledge bases: BM25 over each base's in-memory index, rebuilt
//! from the database when its revision moved.

use std::collections::HashMap;
use std::sync::Arc;

use super::{KnowledgeBase, Passage, SearchHit, off_runtime};
use crate::error::{PracticeError, Result};
use crate::retrieval;
use crate::store::index::{self, KnowledgeIndex, Segment};
use crate::store::{Store, on_pool, placeholders};

/// Indexes `passages` (id, text) into at most `parts` segments built on as
/// many threads: a rebuild's cost is mostly hashing terms, which splits
/// evenly, and a search waits for it.
fn build_segments(passages: &[(i64, String)], parts: usize) -> Vec<Segment> {
    let build = |chunk: &[(i64, String)]| {
        let mut segment = Segment::default();
        for (id, text) in chunk {
            segment.add(*id, text);
        }
        segment
    };
    /// Below this many passages one thread is quicker than starting more.
    const PER_THREAD: usize = 4_096;
    let parts = parts.min(passages.len() / PER_THREAD).max(1);
    if parts == 1 {
        return vec![build(passages)];
    }
    let chunk = passages.len().div_ceil(parts);
    std::thread::scope(|scope| {
        let handles: Vec<_> = passages
            .chunks(chunk)
            .map(|c| scope.spawn(move || build(c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

impl Store {
    /// The `k` passages of the given knowledge bases that best match `query`
    /// (BM25, k1 1.2, b 0.75), best first; ties go to the older passage. Every
    /// base must be visible to the user (else 404).
    pub async fn search(
        &self,
        user_id: i64,
        knowledge_ids: &[i64],
        query: &str,
        k: usize,
    ) -> Result<Vec<SearchHit>> {
        for &id in knowledge_ids {
            self.visible::<KnowledgeBase>(user_id, id).await?;
        }
        self.search_unchecked(knowledge_ids, query, k).await
    }
    /// [`Store::search`] without the visibility check (for callers that did it).
    pub(crate) async fn search_unchecked(
        &self,
        knowledge_ids: &[i64],
        query: &str,
        k: usize,
    ) -> Result<Vec<SearchHit>> {
        let mut terms = retrieval::terms(query);
        terms.sort_unstable();
        terms.dedup();
        if knowledge_ids.is_empty() || terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let indexes = self.indexes_of(knowledge_ids).await?;
        let scores = index::top_passages(&indexes, &terms, k);
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = scores.iter().map(|(id, _)| *id).collect();
        let sql = format!(
            "SELECT id, document_id, knowledge_id, text FROM passages WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let rows: Vec<(i64, i64, i64, String)> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in &ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        });
        let mut by_id: HashMap<i64, Passage> = rows
            .into_iter()
            .map(|(id, document_id, knowledge_id, text)| {
                (
                    id,
                    Passage {
                        id,
                        document_id,
                        knowledge_id,
                        text,
                    },
                )
            })
            .collect();
        Ok(scores
            .into_iter()
            .filter_map(|(id, score)| {
                Some(SearchHit {
                    passage: by_id.remove(&id)?,
                    score,
                })
            })
            .collect())
    }

    /// The in-memory index of each base at its current revision: cached, or
    /// rebuilt from the database when the revision moved (another replica,
    /// or a delete, changed its passages).
    async fn indexes_of(&self, knowledge_ids: &[i64]) -> Result<Vec<Arc<KnowledgeIndex>>> {
        let sql = format!(
            "SELECT id, revision FROM knowledge_bases WHERE id IN ({})",
            placeholders(1, knowledge_ids.len())
        );
        let heads: Vec<(i64, i64)> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in knowledge_ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(heads.len());
        for (id, revision) in heads {
            if let Some(index) = self.indexes.get(id, revision) {
                out.push(index);
                continue;
            }
            // One build per base at a time; whoever waited finds it built.
            let _building = self.indexes.lock(id).await;
            if let Some(index) = self.indexes.get(id, revision) {
                out.push(index);
                continue;
            }
            out.push(self.load_index(id).await?);
        }
        Ok(out)
    }

    /// Rebuilds base `id`'s index from its passages' text and caches it.
    async fn load_index(&self, id: i64) -> Result<Arc<KnowledgeIndex>> {
        // One statement, so one snapshot: the revision read with the passages
        // is the one they are at, and the passages of documents still being
        // indexed are skipped, whatever batch they are at.
        let rows: Vec<(i64, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT p.id, p.text, (SELECT revision FROM knowledge_bases WHERE id = $1) \
             FROM passages p WHERE p.knowledge_id = $1 AND p.document_id NOT IN \
             (SELECT d.id FROM documents d WHERE d.knowledge_id = $1 AND d.indexing = 1)",
        )
        .bind(id)
        .fetch_all(pool)
        .await?);
        let revision = match rows.first() {
            Some(row) => row.2,
            None => on_pool!(self, pool => sqlx::query_scalar(
                "SELECT revision FROM knowledge_bases WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?)
            .ok_or(PracticeError::NotFound("knowledge base"))?,
        };
        let passages: Vec<(i64, String)> =
            rows.into_iter().map(|(id, text, _)| (id, text)).collect();
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let index = off_runtime(move || {
            KnowledgeIndex::from_segments(revision, build_segments(&passages, parts))
        })
        .await;
        let index = Arc::new(index);
        self.indexes.put(id, Arc::clone(&index));
        Ok(index)
    }
}
