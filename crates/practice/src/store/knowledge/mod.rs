//! Knowledge bases: documents split into passages, indexed by terms, searched
//! with BM25. Scores are computed here from integer statistics the database
//! returns, summed in a fixed order, so SQLite and PostgreSQL rank identically.
//!
//! Uploading (parse, split, index, store) is in `upload`, searching (and the
//! in-memory index it reads) in `search`; this module holds the types, the
//! bases and their documents.

mod search;
mod upload;

use serde::Serialize;

use super::library::{Object, VISIBLE};
use super::{Page, PageRequest, Store, now, on_pool, placeholders, write_tx};
use crate::error::{PracticeError, Result};

/// Largest document upload, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// Passages are at most this many tokens (cl100k), so a handful fit any prompt.
pub const PASSAGE_TOKENS: usize = 200;

/// Ids per `IN (...)` list, for the same limits.
const IN_LIST: usize = 1_000;

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
