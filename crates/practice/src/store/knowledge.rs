//! Knowledge bases: documents split into passages, indexed by terms, searched
//! with BM25. Scores are computed here from integer statistics the database
//! returns, summed in a fixed order, so SQLite and PostgreSQL rank identically.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::library::{Object, VISIBLE};
use super::{Page, PageRequest, Store, now, on_pool, placeholders, write_tx};
use crate::error::{PracticeError, Result};
use crate::retrieval::{self, Bm25, DocumentFormat};

/// Largest document upload, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// Passages are at most this many tokens (cl100k), so a handful fit any prompt.
pub const PASSAGE_TOKENS: usize = 200;

/// Rows (passages and postings) written per transaction when a document is
/// indexed: the longest another writer waits behind an upload.
const INDEX_BATCH_ROWS: usize = 5_000;

/// A passage ready to store: its text, its terms with their frequencies, and
/// its length in terms.
type IndexedPassage = (String, Vec<(String, u32)>, u32);

/// A knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnowledgeBase {
    /// Id.
    pub id: i64,
    /// Owner.
    pub owner_id: i64,
    /// The class it is shared with, if any.
    pub class_id: Option<i64>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// The fields of a knowledge base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnowledgeInput {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Share with this class.
    pub class_id: Option<i64>,
}

/// A document of a knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    /// Id.
    pub id: i64,
    /// Its knowledge base.
    pub knowledge_id: i64,
    /// Title: the file name, or the JSONL line's title.
    pub title: String,
    /// `text`, `markdown` or `jsonl`.
    pub format: String,
    /// Size of its text in bytes.
    pub bytes: i64,
    /// How many passages it was split into.
    pub passages: i64,
    /// When it was uploaded.
    pub created_at: String,
}

/// A passage, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passage {
    /// Id.
    pub id: i64,
    /// Its document.
    pub document_id: i64,
    /// Its knowledge base.
    pub knowledge_id: i64,
    /// Text.
    pub text: String,
}

/// A passage found by [`Store::search`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The passage.
    pub passage: Passage,
    /// Its BM25 score (higher is better).
    pub score: f64,
}

impl Object for KnowledgeBase {
    const TABLE: &'static str = "knowledge_bases";
    const NOUN: &'static str = "knowledge base";
    const COLUMNS: &'static str =
        "id, owner_id, class_id, name, description, created_at, updated_at";
    type Row = (i64, i64, Option<i64>, String, String, String, String);
    fn from_row(r: Self::Row) -> Result<Self> {
        Ok(Self {
            id: r.0,
            owner_id: r.1,
            class_id: r.2,
            name: r.3,
            description: r.4,
            created_at: r.5,
            updated_at: r.6,
        })
    }
}

/// The tokenizer passages are measured with. Loaded once: it takes tens of
/// milliseconds.
fn passage_tokens(text: &str) -> usize {
    static TOKENIZER: OnceLock<sluice_core::Tokenizer> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| sluice_core::Embedded::Cl100kBase.tokenizer())
        .count(text)
}

impl Store {
    /// Makes a knowledge base owned by `user_id`.
    pub async fn create_knowledge(
        &self,
        user_id: i64,
        input: &KnowledgeInput,
    ) -> Result<KnowledgeBase> {
        self.create_named(user_id, &input.name, &input.description, input.class_id)
            .await
    }

    /// Replaces a knowledge base's fields.
    pub async fn update_knowledge(
        &self,
        user_id: i64,
        id: i64,
        input: &KnowledgeInput,
    ) -> Result<KnowledgeBase> {
        self.update_named(user_id, id, &input.name, &input.description, input.class_id)
            .await
    }

    /// A knowledge base the user may see.
    pub async fn knowledge(&self, user_id: i64, id: i64) -> Result<KnowledgeBase> {
        self.visible(user_id, id).await
    }

    /// The knowledge bases the user sees, newest first.
    pub async fn list_knowledge(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<Page<KnowledgeBase>> {
        self.list_visible(user_id, page).await
    }

    /// Deletes a knowledge base with its documents and passages.
    pub async fn delete_knowledge(&self, user_id: i64, id: i64) -> Result<()> {
        // Terms carry no foreign key to the base (they are keyed for search),
        // so they go explicitly, in the same transaction.
        self.visible::<KnowledgeBase>(user_id, id).await?;
        self.delete_object::<KnowledgeBase>(user_id, id).await?;
        on_pool!(self, pool => sqlx::query("DELETE FROM passage_terms WHERE knowledge_id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Parses an uploaded file (`.txt`, `.md`, `.jsonl`; `format` overrides the
    /// extension), splits it into passages, indexes them and stores them; they
    /// become searchable together, once all are stored. A JSONL file gives one
    /// document per line.
    pub async fn add_document(
        &self,
        user_id: i64,
        knowledge_id: i64,
        file_name: &str,
        format: Option<DocumentFormat>,
        bytes: &[u8],
    ) -> Result<Vec<Document>> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(PracticeError::TooLarge(format!(
                "a document is at most {MAX_DOCUMENT_BYTES} bytes (got {})",
                bytes.len()
            )));
        }
        // Only the owner or the class's instructor may add to a base (404 if
        // it is not visible at all, 403 if it is only shared with the user).
        self.check_writable::<KnowledgeBase>(user_id, knowledge_id)
            .await?;
        let format = match format.or_else(|| DocumentFormat::from_file_name(file_name)) {
            Some(f) => f,
            None => {
                return Err(PracticeError::BadRequest(format!(
                    "cannot tell the format of {file_name:?}: use a .txt, .md or .jsonl file, or give the format"
                )));
            }
        };
        let parsed = retrieval::parse_document(file_name, Some(format), bytes)
            .map_err(|e| PracticeError::BadRequest(e.to_string()))?;
        // Split and index before the transaction: it is CPU work, and the
        // write lock should be held only for the writes.
        let documents: Vec<(retrieval::ParsedDocument, Vec<IndexedPassage>)> = parsed
            .into_iter()
            .map(|doc| {
                let passages: Vec<_> =
                    retrieval::split_passages(&doc.text, PASSAGE_TOKENS, &passage_tokens)
                        .into_iter()
                        .map(|text| {
                            let (terms, count) = retrieval::term_frequencies(&text);
                            (text, terms, count)
                        })
                        .collect();
                (doc, passages)
            })
            .collect();
        let ids = self
            .index_documents(knowledge_id, format, &documents)
            .await?;
        let mut stored = Vec::with_capacity(ids.len());
        for id in ids {
            stored.push(self.document(user_id, id).await?);
        }
        Ok(stored)
    }

    /// Stores parsed, split and indexed documents in short transactions, so
    /// that a big upload never holds the write lock for long: the documents
    /// first, marked `indexing` (every reader skips them and their passages),
    /// then their passages and postings in batches of about
    /// [`INDEX_BATCH_ROWS`] rows, then, in one last small transaction, the
    /// mark cleared and the base's statistics and revision moved: searches see
    /// all of the upload or none of it. A failure removes what was written.
    async fn index_documents(
        &self,
        knowledge_id: i64,
        format: DocumentFormat,
        documents: &[(retrieval::ParsedDocument, Vec<IndexedPassage>)],
    ) -> Result<Vec<i64>> {
        let at = now();
        let ids = write_tx!(self, tx => {
            let mut ids = Vec::with_capacity(documents.len());
            for (doc, _) in documents {
                let document_id: i64 = sqlx::query_scalar(
                    "INSERT INTO documents (knowledge_id, title, format, bytes, created_at, indexing) \
                     VALUES ($1, $2, $3, $4, $5, 1) RETURNING id",
                )
                .bind(knowledge_id)
                .bind(&doc.title)
                .bind(format.as_str())
                .bind(doc.text.len() as i64)
                .bind(&at)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(document_id);
            }
            ids
        });
        match self.index_batches(knowledge_id, &ids, documents, &at).await {
            Ok(()) => Ok(ids),
            Err(e) => {
                if let Err(cleanup) = self.remove_unindexed(&ids).await {
                    tracing::warn!(error = %cleanup, "cannot remove a failed upload's rows");
                }
                Err(e)
            }
        }
    }

    async fn index_batches(
        &self,
        knowledge_id: i64,
        ids: &[i64],
        documents: &[(retrieval::ParsedDocument, Vec<IndexedPassage>)],
        at: &str,
    ) -> Result<()> {
        let passages: Vec<(i64, usize, &IndexedPassage)> = ids
            .iter()
            .zip(documents)
            .flat_map(|(&id, (_, passages))| {
                passages
                    .iter()
                    .enumerate()
                    .map(move |(position, p)| (id, position, p))
            })
            .collect();
        let mut rest = &passages[..];
        while !rest.is_empty() {
            // At least one passage, then as many as keep the batch under the bound.
            let mut rows = 0;
            let take = rest
                .iter()
                .position(|(_, _, p)| {
                    rows += 1 + p.1.len();
                    rows > INDEX_BATCH_ROWS
                })
                .unwrap_or(rest.len())
                .max(1);
            let (batch, next) = rest.split_at(take);
            rest = next;
            write_tx!(self, tx => {
                for (document_id, position, (text, terms, count)) in batch {
                    let passage_id: i64 = sqlx::query_scalar(
                        "INSERT INTO passages (document_id, knowledge_id, position, text, term_count) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(document_id)
                    .bind(knowledge_id)
                    .bind(*position as i64)
                    .bind(text)
                    .bind(i64::from(*count))
                    .fetch_one(&mut *tx)
                    .await?;
                    // Many rows per statement: one round trip per ~100 terms.
                    for chunk in terms.chunks(100) {
                        let values = (0..chunk.len())
                            .map(|i| format!("($1, $2, $3, ${}, ${})", 4 + 2 * i, 5 + 2 * i))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = format!(
                            "INSERT INTO passage_terms (knowledge_id, passage_id, passage_len, term, tf) \
                             VALUES {values}"
                        );
                        let mut query = sqlx::query(&sql)
                            .bind(knowledge_id)
                            .bind(passage_id)
                            .bind(i64::from(*count));
                        for (term, tf) in chunk {
                            query = query.bind(term.as_str()).bind(i64::from(*tf));
                        }
                        query.execute(&mut *tx).await?;
                    }
                }
            });
            // Let the writers queued meanwhile go first (the lock is fair).
            tokio::task::yield_now().await;
        }
        let terms: i64 = passages.iter().map(|(_, _, p)| i64::from(p.2)).sum();
        write_tx!(self, tx => {
            let sql = format!(
                "UPDATE documents SET indexing = 0 WHERE id IN ({})",
                placeholders(1, ids.len())
            );
            let mut query = sqlx::query(&sql);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE knowledge_bases SET updated_at = $2, passage_count = passage_count + $3, \
                 term_total = term_total + $4, revision = revision + 1 WHERE id = $1",
            )
            .bind(knowledge_id)
            .bind(at)
            .bind(passages.len() as i64)
            .bind(terms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Removes documents still marked `indexing`, with what was written of them.
    async fn remove_unindexed(&self, ids: &[i64]) -> Result<()> {
        for &id in ids {
            write_tx!(self, tx => {
                sqlx::query(
                    "DELETE FROM passage_terms WHERE passage_id IN \
                     (SELECT id FROM passages WHERE document_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM passages WHERE document_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM documents WHERE id = $1 AND indexing = 1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            });
        }
        Ok(())
    }

    /// A document the user may see.
    pub async fn document(&self, user_id: i64, document_id: i64) -> Result<Document> {
        let sql = format!(
            "SELECT d.id, d.knowledge_id, d.title, d.format, d.bytes, d.created_at, \
             (SELECT COUNT(*) FROM passages p WHERE p.document_id = d.id) \
             FROM documents d WHERE d.id = $2 AND d.indexing = 0 AND d.knowledge_id IN \
             (SELECT id FROM knowledge_bases WHERE {VISIBLE})"
        );
        let row: Option<DocumentRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(document_id)
            .fetch_optional(pool)
            .await?);
        row.map(document_from_row)
            .ok_or(PracticeError::NotFound("document"))
    }

    /// The documents of a knowledge base the user may see, newest first.
    pub async fn list_documents(
        &self,
        user_id: i64,
        knowledge_id: i64,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        self.visible::<KnowledgeBase>(user_id, knowledge_id).await?;
        let sql = "SELECT d.id, d.knowledge_id, d.title, d.format, d.bytes, d.created_at, \
             (SELECT COUNT(*) FROM passages p WHERE p.document_id = d.id) \
             FROM documents d WHERE d.knowledge_id = $1 AND d.indexing = 0 \
             ORDER BY d.id DESC LIMIT $2 OFFSET $3";
        let (rows, total): (Vec<DocumentRow>, i64) = on_pool!(self, pool => (
            sqlx::query_as(sql)
                .bind(knowledge_id)
                .bind(page.size)
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE knowledge_id = $1 AND indexing = 0")
                .bind(knowledge_id)
                .fetch_one(pool)
                .await?,
        ));
        Ok(Page {
            items: rows.into_iter().map(document_from_row).collect(),
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// Deletes a document and its passages.
    pub async fn delete_document(&self, user_id: i64, document_id: i64) -> Result<()> {
        let document = self.document(user_id, document_id).await?;
        self.check_writable::<KnowledgeBase>(user_id, document.knowledge_id)
            .await?;
        write_tx!(self, tx => {
            sqlx::query(
                "UPDATE knowledge_bases SET updated_at = $3, \
                 passage_count = passage_count - (SELECT COUNT(*) FROM passages WHERE document_id = $2), \
                 term_total = term_total - (SELECT COALESCE(SUM(term_count), 0) FROM passages WHERE document_id = $2), \
                 revision = revision + 1 \
                 WHERE id = $1",
            )
            .bind(document.knowledge_id)
            .bind(document_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM passage_terms WHERE passage_id IN \
                 (SELECT id FROM passages WHERE document_id = $1)",
            )
            .bind(document_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM documents WHERE id = $1")
                .bind(document_id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

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
        let n_docs: u64 = indexes.iter().map(|i| i.passages).sum();
        let total_len: u64 = indexes.iter().map(|i| i.terms).sum();
        if n_docs == 0 {
            return Ok(Vec::new());
        }
        let bm25 = Bm25::default();
        let avg_len = total_len as f64 / n_docs as f64;
        // Terms in sorted order, so each passage's score is summed in the same
        // order whatever backend or cache state produced the postings: the
        // floating-point result is identical everywhere.
        let mut scores: HashMap<i64, f64> = HashMap::new();
        for term in &terms {
            let lists: Vec<&[PostingEntry]> = indexes
                .iter()
                .filter_map(|i| i.postings.get(term.as_str()).map(Vec::as_slice))
                .collect();
            let df: u64 = lists.iter().map(|l| l.len() as u64).sum();
            for entry in lists.into_iter().flatten() {
                let s = bm25.term_score(entry.tf, df, n_docs, entry.len, avg_len);
                *scores.entry(entry.passage_id).or_default() += s;
            }
        }
        let mut scores: Vec<(i64, f64)> = scores.into_iter().collect();
        scores.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores.truncate(k);
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

    /// The in-memory index of each base, reloaded from the database when the
    /// base's revision moved (another replica may have written it).
    async fn indexes_of(&self, knowledge_ids: &[i64]) -> Result<Vec<Arc<KnowledgeIndex>>> {
        let sql = format!(
            "SELECT id, revision, passage_count, term_total FROM knowledge_bases WHERE id IN ({})",
            placeholders(1, knowledge_ids.len())
        );
        let heads: Vec<(i64, i64, i64, i64)> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in knowledge_ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(heads.len());
        for (id, revision, passages, terms) in heads {
            if let Some(index) = self.indexes.get(id, revision) {
                out.push(index);
                continue;
            }
            let rows: Vec<(String, i64, i64, i64)> = on_pool!(self, pool => sqlx::query_as(
                // One statement, so one snapshot: the postings of documents
                // still being indexed are skipped, whatever batch they are at.
                "SELECT term, passage_id, tf, passage_len FROM passage_terms WHERE knowledge_id = $1 \
                 AND passage_id NOT IN (SELECT p.id FROM passages p JOIN documents d \
                 ON d.id = p.document_id WHERE d.knowledge_id = $1 AND d.indexing = 1)",
            )
            .bind(id)
            .fetch_all(pool)
            .await?);
            let mut postings: HashMap<Box<str>, Vec<PostingEntry>> = HashMap::new();
            for (term, passage_id, tf, len) in rows {
                postings
                    .entry(term.into_boxed_str())
                    .or_default()
                    .push(PostingEntry {
                        passage_id,
                        tf: tf as u32,
                        len: len as u32,
                    });
            }
            let index = Arc::new(KnowledgeIndex {
                revision,
                passages: passages.max(0) as u64,
                terms: terms.max(0) as u64,
                postings,
            });
            self.indexes.put(id, Arc::clone(&index));
            out.push(index);
        }
        Ok(out)
    }
}

/// One passage in a term's posting list.
#[derive(Debug, Clone, Copy)]
struct PostingEntry {
    passage_id: i64,
    tf: u32,
    len: u32,
}

/// A knowledge base's inverted index, as of one revision.
///
/// Why in memory: reading a term's postings through the database costs a few
/// microseconds per row, so a query of common Korean bigrams over 10,000
/// passages took 7-23 ms on SQLite even with the postings clustered by term
/// (BENCHMARKS.md, "Retrieval"); scoring from memory takes well under a
/// millisecond. The database stays the source of truth: the base's `revision`,
/// bumped in the same transaction as every change, is read on each search.
#[derive(Debug)]
pub(crate) struct KnowledgeIndex {
    revision: i64,
    passages: u64,
    terms: u64,
    postings: HashMap<Box<str>, Vec<PostingEntry>>,
}

/// The loaded indexes, by base id; at most [`IndexCache::CAPACITY`] bases,
/// the least recently used dropped first.
#[derive(Debug, Default)]
pub(crate) struct IndexCache {
    /// A use clock, and per base id the clock of its last use and its index.
    entries: std::sync::Mutex<(u64, CacheEntries)>,
}

type CacheEntries = HashMap<i64, (u64, Arc<KnowledgeIndex>)>;

impl IndexCache {
    const CAPACITY: usize = 64;

    fn get(&self, id: i64, revision: i64) -> Option<Arc<KnowledgeIndex>> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let (used, index) = entries.get_mut(&id)?;
        if index.revision != revision {
            return None;
        }
        *used = *clock;
        Some(Arc::clone(index))
    }

    fn put(&self, id: i64, index: Arc<KnowledgeIndex>) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&id) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| *id)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(id, (*clock, index));
    }
}

type DocumentRow = (i64, i64, String, String, i64, String, i64);

fn document_from_row(r: DocumentRow) -> Document {
    Document {
        id: r.0,
        knowledge_id: r.1,
        title: r.2,
        format: r.3,
        bytes: r.4,
        created_at: r.5,
        passages: r.6,
    }
}
