//! Knowledge bases: documents split into passages, indexed by terms, searched
//! with BM25. Scores are computed here from integer statistics the database
//! returns, summed in a fixed order, so SQLite and PostgreSQL rank identically.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::index::{self, KnowledgeIndex, Segment};
use super::library::{Object, VISIBLE};
use super::{Page, PageRequest, Store, now, on_pool, placeholders, write_tx};
use crate::error::{PracticeError, Result};
use crate::retrieval::{self, DocumentFormat};

/// Largest document upload, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// Passages are at most this many tokens (cl100k), so a handful fit any prompt.
pub const PASSAGE_TOKENS: usize = 200;

/// Passage text written per transaction when a document is stored: what
/// another writer waits behind an upload. 256 KiB is one 10-30 ms
/// transaction on SQLite here (BENCHMARKS.md, "A big upload").
const STORE_BATCH_BYTES: usize = 256 * 1024;

/// Rows per `INSERT` statement: one round trip for many rows, well under
/// both backends' limits on bound values (SQLite 32,766, PostgreSQL 65,535).
const INSERT_ROWS: usize = 500;

/// Ids per `IN (...)` list, for the same limits.
const IN_LIST: usize = 1_000;

/// A passage ready to store: its text and its length in terms.
type SplitPassage = (String, u32);

/// An upload parsed, split and indexed, before any of it is stored.
struct PreparedUpload {
    /// Each document with its passages.
    documents: Vec<(retrieval::ParsedDocument, Vec<SplitPassage>)>,
    /// The postings of all passages, numbered in order from 0 until the
    /// database gives them ids.
    segment: Segment,
}

/// Runs CPU-bound `work` on the blocking pool, so that the runtime's workers
/// keep serving other requests meanwhile (parsing and indexing an 8 MiB
/// upload, or rebuilding a big index, takes the better part of a second).
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime itself is shutting down.
        Err(e) => panic!("blocking work cancelled: {e}"),
    }
}

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

/// Parses, splits and indexes an upload: all of its CPU work, done before
/// anything is written, so the write lock is held only for the writes.
fn prepare_upload(file_name: &str, format: DocumentFormat, bytes: &[u8]) -> Result<PreparedUpload> {
    let parsed = retrieval::parse_document(file_name, Some(format), bytes)
        .map_err(|e| PracticeError::BadRequest(e.to_string()))?;
    let mut segment = Segment::default();
    let mut next: i64 = 0;
    let mut documents = Vec::with_capacity(parsed.len());
    for doc in parsed {
        let mut passages = Vec::new();
        for text in retrieval::split_passages(&doc.text, PASSAGE_TOKENS, &passage_tokens) {
            let len = segment.add(next, &text);
            next += 1;
            passages.push((text, len));
        }
        documents.push((doc, passages));
    }
    Ok(PreparedUpload { documents, segment })
}

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
        self.visible::<KnowledgeBase>(user_id, id).await?;
        self.delete_object::<KnowledgeBase>(user_id, id).await?;
        self.indexes.forget(id);
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
        let (file_name, bytes) = (file_name.to_string(), bytes.to_vec());
        let upload = off_runtime(move || prepare_upload(&file_name, format, &bytes)).await?;
        let ids = self.store_upload(knowledge_id, format, upload).await?;
        self.documents_by_id(user_id, &ids).await
    }

    /// Stores a prepared upload in short transactions, so that a big upload
    /// never holds the write lock for long: the documents first, marked
    /// `indexing` (every reader skips them and their passages), then their
    /// passages in batches of about [`STORE_BATCH_BYTES`] of text, then, in
    /// one last small transaction, the mark cleared and the base's statistics
    /// and revision moved: searches see all of the upload or none of it. The
    /// upload's own postings then join this replica's cached index, so the
    /// first search after it rebuilds nothing. A failure removes what was
    /// written.
    async fn store_upload(
        &self,
        knowledge_id: i64,
        format: DocumentFormat,
        upload: PreparedUpload,
    ) -> Result<Vec<i64>> {
        let at = now();
        let mut ids = Vec::with_capacity(upload.documents.len());
        let written = self
            .write_upload(knowledge_id, format, upload, &at, &mut ids)
            .await;
        if written.is_err() {
            if let Err(cleanup) = self.remove_unindexed(&ids).await {
                tracing::warn!(error = %cleanup, "cannot remove a failed upload's rows");
            }
        }
        written.map(|()| ids)
    }

    /// The writes of [`Store::store_upload`]; `ids` collects the documents'
    /// ids as they are written, for the clean-up after a failure.
    async fn write_upload(
        &self,
        knowledge_id: i64,
        format: DocumentFormat,
        upload: PreparedUpload,
        at: &str,
        ids: &mut Vec<i64>,
    ) -> Result<()> {
        let PreparedUpload {
            documents,
            mut segment,
        } = upload;
        for chunk in documents.chunks(INSERT_ROWS) {
            let values = (0..chunk.len())
                .map(|i| {
                    let n = 4 + 2 * i;
                    format!("($1, ${n}, $2, ${}, $3, 1)", n + 1)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO documents (knowledge_id, title, format, bytes, created_at, indexing) \
                 VALUES {values} RETURNING id"
            );
            let mut written: Vec<i64> = write_tx!(self, tx => {
                let mut query = sqlx::query_scalar(&sql)
                    .bind(knowledge_id)
                    .bind(format.as_str())
                    .bind(at);
                for (doc, _) in chunk {
                    query = query.bind(&doc.title).bind(doc.text.len() as i64);
                }
                query.fetch_all(&mut *tx).await?
            });
            // Ids are handed out in the order of the rows, whatever order
            // `RETURNING` gives them back in.
            written.sort_unstable();
            ids.extend(written);
        }
        // Every passage: its document's index, position, text and length.
        let passages: Vec<(usize, usize, &SplitPassage)> = documents
            .iter()
            .enumerate()
            .flat_map(|(d, (_, passages))| passages.iter().enumerate().map(move |(p, x)| (d, p, x)))
            .collect();
        let document_index: HashMap<i64, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut first_passage = Vec::with_capacity(documents.len());
        let mut total = 0;
        for (_, passages) in &documents {
            first_passage.push(total);
            total += passages.len();
        }
        let mut passage_ids = vec![0i64; passages.len()];
        let mut rest = &passages[..];
        while !rest.is_empty() {
            // At least one passage, then as many as keep the batch under the bound.
            let mut bytes = 0;
            let take = rest
                .iter()
                .position(|(_, _, (text, _))| {
                    bytes += text.len();
                    bytes > STORE_BATCH_BYTES
                })
                .unwrap_or(rest.len())
                .max(1);
            let (batch, next) = rest.split_at(take);
            rest = next;
            let written: Vec<(i64, i64, i64)> = write_tx!(self, tx => {
                let mut written = Vec::with_capacity(batch.len());
                for chunk in batch.chunks(INSERT_ROWS) {
                    let values = (0..chunk.len())
                        .map(|i| {
                            let n = 2 + 4 * i;
                            format!("(${n}, $1, ${}, ${}, ${})", n + 1, n + 2, n + 3)
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO passages (document_id, knowledge_id, position, text, term_count) \
                         VALUES {values} RETURNING id, document_id, position"
                    );
                    let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql).bind(knowledge_id);
                    for (d, position, (text, len)) in chunk {
                        query = query
                            .bind(ids[*d])
                            .bind(*position as i64)
                            .bind(text.as_str())
                            .bind(i64::from(*len));
                    }
                    written.extend(query.fetch_all(&mut *tx).await?);
                }
                written
            });
            for (id, document_id, position) in written {
                let d = document_index[&document_id];
                passage_ids[first_passage[d] + position as usize] = id;
            }
            // Let the writers queued meanwhile go first (the lock is fair).
            tokio::task::yield_now().await;
        }
        let segment = off_runtime(move || {
            segment.renumber(&passage_ids);
            segment
        })
        .await;
        let terms: i64 = passages
            .iter()
            .map(|(_, _, (_, len))| i64::from(*len))
            .sum();
        // Searches of this base wait for the cached index to follow the
        // commit, rather than rebuild it from the database meanwhile.
        let _building = self.indexes.lock(knowledge_id).await;
        let revision: Option<i64> = write_tx!(self, tx => {
            for chunk in ids.chunks(IN_LIST) {
                let sql = format!(
                    "UPDATE documents SET indexing = 0 WHERE id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
            }
            sqlx::query_scalar(
                "UPDATE knowledge_bases SET updated_at = $2, passage_count = passage_count + $3, \
                 term_total = term_total + $4, revision = revision + 1 WHERE id = $1 \
                 RETURNING revision",
            )
            .bind(knowledge_id)
            .bind(at)
            .bind(passages.len() as i64)
            .bind(terms)
            .fetch_optional(&mut *tx)
            .await?
        });
        // The base was deleted meanwhile (its documents went with it).
        let revision = revision.ok_or(PracticeError::NotFound("knowledge base"))?;
        if let Some(index) = self.indexes.extend(knowledge_id, revision, segment) {
            if index.segment_count() > index::MAX_SEGMENTS {
                let merged = off_runtime(move || index.merged()).await;
                self.indexes.put(knowledge_id, Arc::new(merged));
            }
        }
        Ok(())
    }

    /// Removes documents still marked `indexing`, with what was written of them.
    async fn remove_unindexed(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(IN_LIST) {
            let list = placeholders(1, chunk.len());
            let passages = format!(
                "DELETE FROM passages WHERE document_id IN \
                 (SELECT id FROM documents WHERE id IN ({list}) AND indexing = 1)"
            );
            let documents = format!("DELETE FROM documents WHERE id IN ({list}) AND indexing = 1");
            write_tx!(self, tx => {
                for sql in [&passages, &documents] {
                    let mut query = sqlx::query(sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    query.execute(&mut *tx).await?;
                }
            });
        }
        Ok(())
    }

    /// The documents with these ids (ascending) that the user may see; "not
    /// found" if one of them is not there.
    async fn documents_by_id(&self, user_id: i64, ids: &[i64]) -> Result<Vec<Document>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST) {
            let sql = format!(
                "SELECT d.id, d.knowledge_id, d.title, d.format, d.bytes, d.created_at, \
                 (SELECT COUNT(*) FROM passages p WHERE p.document_id = d.id) \
                 FROM documents d WHERE d.id IN ({}) AND d.indexing = 0 AND d.knowledge_id IN \
                 (SELECT id FROM knowledge_bases WHERE {VISIBLE}) ORDER BY d.id",
                placeholders(2, chunk.len())
            );
            let rows: Vec<DocumentRow> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(&sql).bind(user_id);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            if rows.len() != chunk.len() {
                return Err(PracticeError::NotFound("document"));
            }
            out.extend(rows.into_iter().map(document_from_row));
        }
        Ok(out)
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
