//! Review: an instructor reads (never changes) the sessions of their class's
//! students. Each read of a session is recorded, and its student can list the
//! record. Anything an instructor may not see is "not found", as for a stranger.

use serde::Serialize;

use super::sessions::SummaryRow;
use super::{
    Class, ClassRole, Page, PageRequest, SessionDetail, SessionSummary, Store, now, on_pool,
    write_tx,
};
use crate::error::{PracticeError, Result};

/// Which of a class's sessions to list; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassSessionFilter {
    /// Only this student's.
    pub student_id: Option<i64>,
    /// Only sessions that used this model.
    pub model_name: Option<String>,
    /// Only sessions with this agent.
    pub agent_id: Option<i64>,
    /// Made at or after this time (RFC 3339 UTC, as stored).
    pub from: Option<String>,
    /// Made before this time.
    pub to: Option<String>,
    /// Only sessions with (`true`) or without (`false`) a failed model call.
    pub has_errors: Option<bool>,
}

/// A student's session in the class's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSession {
    /// The student.
    pub student_id: i64,
    /// The student's name.
    pub student_name: String,
    /// Whether a model call of the session failed.
    pub has_errors: bool,
    /// The session.
    #[serde(flatten)]
    pub summary: SessionSummary,
}

/// A student's session as an instructor reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudentSession {
    /// The student.
    pub student_id: i64,
    /// The student's name.
    pub student_name: String,
    /// Always true: an instructor cannot change it.
    pub read_only: bool,
    /// The session with every turn and result.
    #[serde(flatten)]
    pub detail: SessionDetail,
}

/// One instructor's read of a student's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRead {
    /// Id.
    pub id: i64,
    /// The session read.
    pub session_id: i64,
    /// Its class.
    pub class_id: i64,
    /// Who read it.
    pub reader_id: i64,
    /// Their name.
    pub reader_name: String,
    /// When (RFC 3339 UTC).
    pub read_at: String,
}

/// A student of a class with their activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentActivity {
    /// The student.
    pub user_id: i64,
    /// Their name.
    pub user_name: String,
    /// Sessions they have in the class.
    pub sessions: i64,
    /// Turns over those sessions.
    pub turns: i64,
    /// When one of their sessions last changed; `null` when they have none.
    pub last_active: Option<String>,
}

const CLASS_SESSION_COLUMNS: &str = "s.id, s.class_id, s.project_id, s.agent_id, s.title, \
     s.knowledge_ids, s.created_at, s.updated_at, s.user_id, u.name, \
     EXISTS (SELECT 1 FROM turns t JOIN results r ON r.turn_id = t.id \
             WHERE t.session_id = s.id AND r.error IS NOT NULL)";

/// The sessions of the class's students: `$1` the class.
const CLASS_SESSIONS: &str = "FROM sessions s \
     JOIN class_members m ON m.class_id = s.class_id AND m.user_id = s.user_id AND m.role = 'student' \
     JOIN users u ON u.id = s.user_id WHERE s.class_id = $1";

impl Store {
    /// The class, if `user_id` is one of its instructors; "not found"
    /// otherwise, as for a class that does not exist.
    pub async fn instructor_class(&self, class_id: i64, user_id: i64) -> Result<Class> {
        match self.role_in(class_id, user_id).await? {
            Some(ClassRole::Instructor) => self.class(class_id).await,
            _ => Err(PracticeError::NotFound("class")),
        }
    }

    /// One page of the sessions of a class's students, newest first. The
    /// caller checks that the reader may see them ([`Store::instructor_class`]).
    pub async fn class_sessions(
        &self,
        class_id: i64,
        filter: &ClassSessionFilter,
        page: PageRequest,
    ) -> Result<Page<ClassSession>> {
        let condition = "AND ($2 IS NULL OR s.user_id = $2) AND ($3 IS NULL OR s.agent_id = $3) \
             AND ($4 IS NULL OR s.created_at >= $4) AND ($5 IS NULL OR s.created_at < $5) \
             AND ($6 IS NULL OR EXISTS (SELECT 1 FROM session_models sm \
                  WHERE sm.session_id = s.id AND sm.model_name = $6)) \
             AND ($7 IS NULL OR $7 = EXISTS (SELECT 1 FROM turns t JOIN results r ON r.turn_id = t.id \
                  WHERE t.session_id = s.id AND r.error IS NOT NULL))";
        let sql = format!(
            "SELECT {CLASS_SESSION_COLUMNS} {CLASS_SESSIONS} {condition} \
             ORDER BY s.id DESC LIMIT $8 OFFSET $9"
        );
        let count = format!("SELECT COUNT(*) {CLASS_SESSIONS} {condition}");
        type Row = (
            i64,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
            String,
            String,
            String,
            i64,
            String,
            bool,
        );
        macro_rules! bind_filter {
            ($query:expr) => {
                $query
                    .bind(class_id)
                    .bind(filter.student_id)
                    .bind(filter.agent_id)
                    .bind(&filter.from)
                    .bind(&filter.to)
                    .bind(&filter.model_name)
                    .bind(filter.has_errors)
            };
        }
        let (rows, total): (Vec<Row>, i64) = on_pool!(self, pool => (
            bind_filter!(sqlx::query_as(&sql))
                .bind(page.size)
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
            bind_filter!(sqlx::query_scalar(&count)).fetch_one(pool).await?,
        ));
        let heads: Vec<SummaryRow> = rows
            .iter()
            .map(|r| {
                (
                    r.0,
                    r.1,
                    r.2,
                    r.3,
                    r.4.clone(),
                    r.5.clone(),
                    r.6.clone(),
                    r.7.clone(),
                )
            })
            .collect();
        let summaries = self.summaries(heads).await?;
        let items = rows
            .into_iter()
            .zip(summaries)
            .map(|(r, summary)| ClassSession {
                student_id: r.8,
                student_name: r.9,
                has_errors: r.10,
                summary,
            })
            .collect();
        Ok(Page {
            items,
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// A student's session read by an instructor of its class, recorded in the
    /// student's access record. "Not found" unless `reader_id` instructs
    /// `class_id` and the session is one of its students' in that class.
    pub async fn read_student_session(
        &self,
        reader_id: i64,
        class_id: i64,
        session_id: i64,
    ) -> Result<StudentSession> {
        self.instructor_class(class_id, reader_id)
            .await
            .map_err(|e| match e {
                PracticeError::NotFound(_) => PracticeError::NotFound("session"),
                e => e,
            })?;
        let sql = format!("SELECT s.user_id, u.name {CLASS_SESSIONS} AND s.id = $2");
        let owner: Option<(i64, String)> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(class_id)
            .bind(session_id)
            .fetch_optional(pool)
            .await?);
        let (student_id, student_name) = owner.ok_or(PracticeError::NotFound("session"))?;
        let detail = self.session(student_id, session_id).await?;
        write_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO session_reads (session_id, class_id, student_id, reader_id, read_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session_id)
            .bind(class_id)
            .bind(student_id)
            .bind(reader_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        });
        Ok(StudentSession {
            student_id,
            student_name,
            read_only: true,
            detail,
        })
    }

    /// Who read the student's sessions, newest first; only `session_id`'s
    /// reads when given.
    pub async fn session_reads(
        &self,
        student_id: i64,
        session_id: Option<i64>,
        page: PageRequest,
    ) -> Result<Page<SessionRead>> {
        let from = "FROM session_reads r JOIN users u ON u.id = r.reader_id \
             WHERE r.student_id = $1 AND ($2 IS NULL OR r.session_id = $2)";
        let sql = format!(
            "SELECT r.id, r.session_id, r.class_id, r.reader_id, u.name, r.read_at {from} \
             ORDER BY r.id DESC LIMIT $3 OFFSET $4"
        );
        let count = format!("SELECT COUNT(*) {from}");
        type Row = (i64, i64, i64, i64, String, String);
        let (rows, total): (Vec<Row>, i64) = on_pool!(self, pool => (
            sqlx::query_as(&sql)
                .bind(student_id)
                .bind(session_id)
                .bind(page.size)
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(&count)
                .bind(student_id)
                .bind(session_id)
                .fetch_one(pool)
                .await?,
        ));
        Ok(Page {
            items: rows
                .into_iter()
                .map(|r| SessionRead {
                    id: r.0,
                    session_id: r.1,
                    class_id: r.2,
                    reader_id: r.3,
                    reader_name: r.4,
                    read_at: r.5,
                })
                .collect(),
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// The students of a class with how many sessions and turns they have
    /// there and when they were last active.
    pub async fn class_students(&self, class_id: i64) -> Result<Vec<StudentActivity>> {
        let rows: Vec<(i64, String, i64, i64, Option<String>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT m.user_id, u.name, \
               (SELECT COUNT(*) FROM sessions s WHERE s.class_id = m.class_id AND s.user_id = m.user_id), \
               (SELECT COUNT(*) FROM turns t JOIN sessions s ON s.id = t.session_id \
                 WHERE s.class_id = m.class_id AND s.user_id = m.user_id), \
               (SELECT MAX(s.updated_at) FROM sessions s WHERE s.class_id = m.class_id AND s.user_id = m.user_id) \
             FROM class_members m JOIN users u ON u.id = m.user_id \
             WHERE m.class_id = $1 AND m.role = 'student' ORDER BY u.name",
        )
        .bind(class_id)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| StudentActivity {
                user_id: r.0,
                user_name: r.1,
                sessions: r.2,
                turns: r.3,
                last_active: r.4,
            })
            .collect())
    }
}
