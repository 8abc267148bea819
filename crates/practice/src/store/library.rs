//! A user's libraries: agents, projects and few-shot examples (knowledge bases
//! are in `knowledge`). Each object has an owner and may be shared with one
//! class. A user sees what they own and what is shared with a class they belong
//! to; they change what they own, and instructors change what is shared with
//! their class. Anything else is "not found", never "forbidden": ids of other
//! users' objects are not confirmed.

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::ClassRole;
use super::{Page, PageRequest, Store, from_json_text, now, on_pool, on_writer, to_json_text};
use crate::contract::{GenerationParams, StyleParams};
use crate::error::{PracticeError, Result};

/// `WHERE` clause: the object is visible to user `$1`.
pub(crate) const VISIBLE: &str = "(owner_id = $1 OR class_id IN \
     (SELECT class_id FROM class_members WHERE user_id = $1))";

/// `WHERE` clause: user `$1` may change the object.
const WRITABLE: &str = "(owner_id = $1 OR class_id IN \
     (SELECT class_id FROM class_members WHERE user_id = $1 AND role = 'instructor'))";

/// A stored library object: one table, its columns, its row type.
pub(crate) trait Object: Sized + Send {
    /// The table.
    const TABLE: &'static str;
    /// What it is called in messages ("agent not found").
    const NOUN: &'static str;
    /// The selected columns, in the order of `Row`.
    const COLUMNS: &'static str;
    /// The row as a tuple.
    type Row: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin;
    /// The object from its row.
    fn from_row(row: Self::Row) -> Result<Self>;
}

/// An agent: a saved system prompt with defaults for the runs that use it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// Id.
    pub id: i64,
    /// Owner.
    pub owner_id: i64,
    /// The class it is shared with, if any.
    pub class_id: Option<i64>,
    /// Name.
    pub name: String,
    /// The instructions, added to the system message of every run that uses it.
    pub instructions: String,
    /// The model it prefers when a run names none.
    pub model_name: Option<String>,
    /// Default style preset.
    pub style_preset: Option<String>,
    /// Default style parameters (for `custom`).
    pub style_params: Option<StyleParams>,
    /// Default generation parameters.
    pub generation_params: Option<GenerationParams>,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// The fields of an agent, as created or updated (validated by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInput {
    /// Name, 1..=100 characters.
    pub name: String,
    /// Instructions.
    pub instructions: String,
    /// Preferred model.
    pub model_name: Option<String>,
    /// Default style preset.
    pub style_preset: Option<String>,
    /// Default style parameters.
    pub style_params: Option<StyleParams>,
    /// Default generation parameters.
    pub generation_params: Option<GenerationParams>,
    /// Share with this class (the owner must belong to it).
    pub class_id: Option<i64>,
}

/// A project: a folder that groups sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
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

/// The fields of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectInput {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Share with this class.
    pub class_id: Option<i64>,
}

/// A few-shot example: an input and the output a model should give for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FewShotExample {
    /// Id.
    pub id: i64,
    /// Owner.
    pub owner_id: i64,
    /// The class it is shared with, if any.
    pub class_id: Option<i64>,
    /// The user side.
    pub input: String,
    /// The assistant side.
    pub output: String,
    /// A note for people; never sent to a model.
    pub note: Option<String>,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// The fields of a few-shot example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FewShotInput {
    /// The user side.
    pub input: String,
    /// The assistant side.
    pub output: String,
    /// A note.
    pub note: Option<String>,
    /// Share with this class.
    pub class_id: Option<i64>,
}

fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Result<Option<T>> {
    text.as_deref().map(from_json_text).transpose()
}

impl Object for Agent {
    const TABLE: &'static str = "agents";
    const NOUN: &'static str = "agent";
    const COLUMNS: &'static str = "id, owner_id, class_id, name, instructions, model_name, \
         style_preset, style_params, generation_params, created_at, updated_at";
    #[allow(clippy::type_complexity)]
    type Row = (
        i64,
        i64,
        Option<i64>,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
    );
    fn from_row(r: Self::Row) -> Result<Self> {
        Ok(Self {
            id: r.0,
            owner_id: r.1,
            class_id: r.2,
            name: r.3,
            instructions: r.4,
            model_name: r.5,
            style_preset: r.6,
            style_params: json_column(r.7)?,
            generation_params: json_column(r.8)?,
            created_at: r.9,
            updated_at: r.10,
        })
    }
}

impl Object for Project {
    const TABLE: &'static str = "projects";
    const NOUN: &'static str = "project";
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

impl Object for FewShotExample {
    const TABLE: &'static str = "few_shot_examples";
    const NOUN: &'static str = "few-shot example";
    const COLUMNS: &'static str =
        "id, owner_id, class_id, input, output, note, created_at, updated_at";
    type Row = (
        i64,
        i64,
        Option<i64>,
        String,
        String,
        Option<String>,
        String,
        String,
    );
    fn from_row(r: Self::Row) -> Result<Self> {
        Ok(Self {
            id: r.0,
            owner_id: r.1,
            class_id: r.2,
            input: r.3,
            output: r.4,
            note: r.5,
            created_at: r.6,
            updated_at: r.7,
        })
    }
}

impl Store {
    /// The object, if `user_id` may see it.
    pub(crate) async fn visible<T: Object>(&self, user_id: i64, id: i64) -> Result<T> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $2 AND {VISIBLE}",
            T::COLUMNS,
            T::TABLE
        );
        let row: Option<T::Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(T::from_row)
            .transpose()?
            .ok_or(PracticeError::NotFound(T::NOUN))
    }

    /// Fails unless `user_id` may change the object: 404 if they cannot see
    /// it either, 403 if they see it through a class but do not own it.
    pub(crate) async fn check_writable<T: Object>(&self, user_id: i64, id: i64) -> Result<()> {
        let sql = format!("SELECT id FROM {} WHERE id = $2 AND {WRITABLE}", T::TABLE);
        let found: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(user_id)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        if found.is_some() {
            return Ok(());
        }
        self.visible::<T>(user_id, id).await?;
        Err(PracticeError::Forbidden(format!(
            "this {} is shared with your class; only its owner or the class's instructor may change it",
            T::NOUN
        )))
    }

    /// Fails with 403 unless the user may share with `class_id` (is a member).
    pub(crate) async fn check_share(&self, user_id: i64, class_id: Option<i64>) -> Result<()> {
        let Some(class_id) = class_id else {
            return Ok(());
        };
        self.class_for_member(class_id, user_id).await.map(|_| ())
    }

    /// Fails with 403 unless `user_id`, who may change the object (see
    /// [`Store::check_writable`]), may also put it in class `target`.
    ///
    /// Keeping the class is no move. Otherwise the owner must belong to the
    /// target class (else a class's instructor who is also a member elsewhere
    /// could hand a student's instructions to a class the student never
    /// joined), and the caller must be able to write there: the owner to any
    /// class they belong to or to none, an instructor only to a class they
    /// teach. Checked against the stored row, not the caller's idea of it.
    pub(crate) async fn check_move<T: Object>(
        &self,
        user_id: i64,
        id: i64,
        target: Option<i64>,
    ) -> Result<()> {
        let sql = format!("SELECT owner_id, class_id FROM {} WHERE id = $1", T::TABLE);
        let row: Option<(i64, Option<i64>)> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        let (owner_id, current) = row.ok_or(PracticeError::NotFound(T::NOUN))?;
        if target == current {
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(PracticeError::Forbidden(format!(
                "this {} cannot move to that class: {why}",
                T::NOUN
            )))
        };
        let Some(target) = target else {
            if owner_id == user_id {
                return Ok(());
            }
            return refuse("only its owner may stop sharing it");
        };
        if self.role_in(target, owner_id).await?.is_none() {
            return refuse("its owner does not belong to the class");
        }
        if owner_id == user_id {
            return Ok(());
        }
        match self.role_in(target, user_id).await? {
            Some(ClassRole::Instructor) => Ok(()),
            _ => refuse("only its owner or the class's instructor may share it there"),
        }
    }

    /// One page of the objects `user_id` sees, newest first.
    pub(crate) async fn list_visible<T: Object>(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<Page<T>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {VISIBLE} ORDER BY id DESC LIMIT $2 OFFSET $3",
            T::COLUMNS,
            T::TABLE
        );
        let count = format!("SELECT COUNT(*) FROM {} WHERE {VISIBLE}", T::TABLE);
        let (rows, total): (Vec<T::Row>, i64) = on_pool!(self, pool => (
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(page.size)
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(&count).bind(user_id).fetch_one(pool).await?,
        ));
        Ok(Page {
            items: rows.into_iter().map(T::from_row).collect::<Result<_>>()?,
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// Deletes an object the user may change.
    pub(crate) async fn delete_object<T: Object>(&self, user_id: i64, id: i64) -> Result<()> {
        self.check_writable::<T>(user_id, id).await?;
        let sql = format!("DELETE FROM {} WHERE id = $2 AND {WRITABLE}", T::TABLE);
        let done = on_writer!(self, pool => sqlx::query(&sql)
            .bind(user_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        if done == 0 {
            return Err(PracticeError::NotFound(T::NOUN));
        }
        Ok(())
    }

    /// Makes an agent owned by `user_id`.
    pub async fn create_agent(&self, user_id: i64, input: &AgentInput) -> Result<Agent> {
        self.check_share(user_id, input.class_id).await?;
        let at = now();
        let id: i64 = on_writer!(self, pool => sqlx::query_scalar(
            "INSERT INTO agents (owner_id, class_id, name, instructions, model_name, style_preset, \
             style_params, generation_params, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        )
        .bind(user_id)
        .bind(input.class_id)
        .bind(&input.name)
        .bind(&input.instructions)
        .bind(&input.model_name)
        .bind(&input.style_preset)
        .bind(input.style_params.as_ref().map(to_json_text))
        .bind(input.generation_params.as_ref().map(to_json_text))
        .bind(&at)
        .fetch_one(pool)
        .await?);
        self.visible(user_id, id).await
    }

    /// Replaces an agent's fields.
    pub async fn update_agent(&self, user_id: i64, id: i64, input: &AgentInput) -> Result<Agent> {
        self.check_writable::<Agent>(user_id, id).await?;
        self.check_move::<Agent>(user_id, id, input.class_id)
            .await?;
        on_writer!(self, pool => sqlx::query(
            "UPDATE agents SET class_id = $2, name = $3, instructions = $4, model_name = $5, \
             style_preset = $6, style_params = $7, generation_params = $8, updated_at = $9 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(input.class_id)
        .bind(&input.name)
        .bind(&input.instructions)
        .bind(&input.model_name)
        .bind(&input.style_preset)
        .bind(input.style_params.as_ref().map(to_json_text))
        .bind(input.generation_params.as_ref().map(to_json_text))
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected());
        self.visible(user_id, id).await
    }

    /// An agent the user may see.
    pub async fn agent(&self, user_id: i64, id: i64) -> Result<Agent> {
        self.visible(user_id, id).await
    }

    /// The agents the user sees, newest first.
    pub async fn list_agents(&self, user_id: i64, page: PageRequest) -> Result<Page<Agent>> {
        self.list_visible(user_id, page).await
    }

    /// Deletes an agent the user may change.
    pub async fn delete_agent(&self, user_id: i64, id: i64) -> Result<()> {
        self.delete_object::<Agent>(user_id, id).await
    }

    /// Makes a project owned by `user_id`.
    pub async fn create_project(&self, user_id: i64, input: &ProjectInput) -> Result<Project> {
        self.create_named(user_id, &input.name, &input.description, input.class_id)
            .await
    }

    /// Replaces a project's fields.
    pub async fn update_project(
        &self,
        user_id: i64,
        id: i64,
        input: &ProjectInput,
    ) -> Result<Project> {
        self.update_named(user_id, id, &input.name, &input.description, input.class_id)
            .await
    }

    /// Makes an object of a table with `name`, `description` and `class_id`
    /// (projects, knowledge bases).
    pub(crate) async fn create_named<T: Object>(
        &self,
        user_id: i64,
        name: &str,
        description: &str,
        class_id: Option<i64>,
    ) -> Result<T> {
        self.check_share(user_id, class_id).await?;
        let sql = format!(
            "INSERT INTO {} (owner_id, class_id, name, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            T::TABLE
        );
        let id: i64 = on_writer!(self, pool => sqlx::query_scalar(&sql)
            .bind(user_id)
            .bind(class_id)
            .bind(name)
            .bind(description)
            .bind(now())
            .fetch_one(pool)
            .await?);
        self.visible(user_id, id).await
    }

    /// Replaces the fields of an object made by [`Store::create_named`].
    pub(crate) async fn update_named<T: Object>(
        &self,
        user_id: i64,
        id: i64,
        name: &str,
        description: &str,
        class_id: Option<i64>,
    ) -> Result<T> {
        self.check_writable::<T>(user_id, id).await?;
        self.check_move::<T>(user_id, id, class_id).await?;
        let sql = format!(
            "UPDATE {} SET class_id = $2, name = $3, description = $4, updated_at = $5 WHERE id = $1",
            T::TABLE
        );
        on_writer!(self, pool => sqlx::query(&sql)
            .bind(id)
            .bind(class_id)
            .bind(name)
            .bind(description)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected());
        self.visible(user_id, id).await
    }

    /// A project the user may see.
    pub async fn project(&self, user_id: i64, id: i64) -> Result<Project> {
        self.visible(user_id, id).await
    }

    /// The projects the user sees, newest first.
    pub async fn list_projects(&self, user_id: i64, page: PageRequest) -> Result<Page<Project>> {
        self.list_visible(user_id, page).await
    }

    /// Deletes a project the user may change (its sessions stay, without a project).
    pub async fn delete_project(&self, user_id: i64, id: i64) -> Result<()> {
        self.delete_object::<Project>(user_id, id).await
    }

    /// Makes a few-shot example owned by `user_id`.
    pub async fn create_few_shot(
        &self,
        user_id: i64,
        input: &FewShotInput,
    ) -> Result<FewShotExample> {
        self.check_share(user_id, input.class_id).await?;
        let at = now();
        let id: i64 = on_writer!(self, pool => sqlx::query_scalar(
            "INSERT INTO few_shot_examples (owner_id, class_id, input, output, note, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(user_id)
        .bind(input.class_id)
        .bind(&input.input)
        .bind(&input.output)
        .bind(&input.note)
        .bind(&at)
        .fetch_one(pool)
        .await?);
        self.visible(user_id, id).await
    }

    /// Replaces a few-shot example's fields.
    pub async fn update_few_shot(
        &self,
        user_id: i64,
        id: i64,
        input: &FewShotInput,
    ) -> Result<FewShotExample> {
        self.check_writable::<FewShotExample>(user_id, id).await?;
        self.check_move::<FewShotExample>(user_id, id, input.class_id)
            .await?;
        on_writer!(self, pool => sqlx::query(
            "UPDATE few_shot_examples SET class_id = $2, input = $3, output = $4, note = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(input.class_id)
        .bind(&input.input)
        .bind(&input.output)
        .bind(&input.note)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected());
        self.visible(user_id, id).await
    }

    /// A few-shot example the user may see.
    pub async fn few_shot(&self, user_id: i64, id: i64) -> Result<FewShotExample> {
        self.visible(user_id, id).await
    }

    /// The few-shot examples the user sees, newest first.
    pub async fn list_few_shots(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<Page<FewShotExample>> {
        self.list_visible(user_id, page).await
    }

    /// Deletes a few-shot example the user may change.
    pub async fn delete_few_shot(&self, user_id: i64, id: i64) -> Result<()> {
        self.delete_object::<FewShotExample>(user_id, id).await
    }
}
