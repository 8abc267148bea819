//! Uploading documents: parsed, split and indexed off the runtime, then
//! stored in short transactions and made searchable all at once.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{Document, IN_LIST, KnowledgeBase, MAX_DOCUMENT_BYTES, PASSAGE_TOKENS, off_runtime};
use crate::error::{PracticeError, Result};
use crate::retrieval::{self, DocumentFormat};
use crate::store::index::{self, Segment};
use crate::store::{Store, now, placeholders, write_tx};

/// Passage text written per transaction when a document is stored: what
/// another writer waits behind an upload. 256 KiB is one 10-30 ms
/// transaction on SQLite here (BENCHMARKS.md, "A big upload").
const STORE_BATCH_BYTES: usize = 256 * 1024;

/// Rows per `INSERT` statement: one round trip for many rows, well under
/// both backends' limits on bound values (SQLite 32,766, PostgreSQL 65,535).
const INSERT_ROWS: usize = 500;

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

impl Store {
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
}
