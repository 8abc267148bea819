//! Classes: instructors and students, and the models a class may use.

use serde::Serialize;

use super::{Store, now, on_pool, on_writer, write_tx};
use crate::error::{PracticeError, Result};

/// A member's role in a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassRole {
    /// Manages the class: its members, its models, what is shared with it.
    Instructor,
    /// Practises in the class.
    Student,
}

impl ClassRole {
    /// `instructor` or `student`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instructor => "instructor",
            Self::Student => "student",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "instructor" => Ok(Self::Instructor),
            "student" => Ok(Self::Student),
            other => Err(PracticeError::Corrupt(format!("class role {other:?}"))),
        }
    }
}

/// A class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Class {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The models its members may use, in order; the primary one is among them.
    pub models: Vec<String>,
    /// The model used when a run names none.
    pub primary_model: String,
    /// When it was made.
    pub created_at: String,
}

/// One member of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// The class.
    pub class_id: i64,
    /// The user.
    pub user_id: i64,
    /// The user's name.
    pub user_name: String,
    /// Their role.
    pub role: ClassRole,
}

/// The model list with duplicates removed and the primary model checked.
fn check_models(models: &[String], primary: &str) -> Result<Vec<String>> {
    let mut list: Vec<String> = Vec::with_capacity(models.len());
    for m in models.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        if !list.iter().any(|x| x == m) {
            list.push(m.to_string());
        }
    }
    let primary = primary.trim();
    if primary.is_empty() {
        return Err(PracticeError::BadRequest(
            "a class needs a primary model".into(),
        ));
    }
    if !list.iter().any(|m| m == primary) {
        list.insert(0, primary.to_string());
    }
    Ok(list)
}

impl Store {
    /// Makes a class with its first instructor, its models and its primary model
    /// (added to the models if missing).
    pub async fn create_class(
        &self,
        name: &str,
        instructor_id: i64,
        models: &[String],
        primary: &str,
    ) -> Result<Class> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(PracticeError::BadRequest(
                "a class name is 1 to 200 characters".into(),
            ));
        }
        let models = check_models(models, primary)?;
        let created_at = now();
        let id = write_tx!(self, tx => {
            let user: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(instructor_id)
                .fetch_optional(&mut *tx)
                .await?;
            if user.is_none() {
                return Err(PracticeError::NotFound("user"));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO classes (name, primary_model, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(name)
            .bind(primary.trim())
            .bind(&created_at)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO class_members (class_id, user_id, role) VALUES ($1, $2, 'instructor')")
                .bind(id)
                .bind(instructor_id)
                .execute(&mut *tx)
                .await?;
            for (position, model) in models.iter().enumerate() {
                sqlx::query("INSERT INTO class_models (class_id, model_name, position) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(model)
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            id
        });
        self.class(id).await
    }

    /// Replaces a class's models and primary model.
    pub async fn set_class_models(
        &self,
        class_id: i64,
        models: &[String],
        primary: &str,
    ) -> Result<Class> {
        let models = check_models(models, primary)?;
        write_tx!(self, tx => {
            let found = sqlx::query("UPDATE classes SET primary_model = $2 WHERE id = $1")
                .bind(class_id)
                .bind(primary.trim())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if found == 0 {
                return Err(PracticeError::NotFound("class"));
            }
            sqlx::query("DELETE FROM class_models WHERE class_id = $1")
                .bind(class_id)
                .execute(&mut *tx)
                .await?;
            for (position, model) in models.iter().enumerate() {
                sqlx::query("INSERT INTO class_models (class_id, model_name, position) VALUES ($1, $2, $3)")
                    .bind(class_id)
                    .bind(model)
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        self.class(class_id).await
    }

    /// A class.
    pub async fn class(&self, class_id: i64) -> Result<Class> {
        let row: Option<(i64, String, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, name, primary_model, created_at FROM classes WHERE id = $1",
        )
        .bind(class_id)
        .fetch_optional(pool)
        .await?);
        let (id, name, primary_model, created_at) = row.ok_or(PracticeError::NotFound("class"))?;
        let models: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT model_name FROM class_models WHERE class_id = $1 ORDER BY position",
        )
        .bind(class_id)
        .fetch_all(pool)
        .await?);
        Ok(Class {
            id,
            name,
            models,
            primary_model,
            created_at,
        })
    }

    /// Adds a user to a class, or changes their role.
    pub async fn add_member(&self, class_id: i64, user_id: i64, role: ClassRole) -> Result<()> {
        write_tx!(self, tx => {
            let class: Option<i64> = sqlx::query_scalar("SELECT id FROM classes WHERE id = $1")
                .bind(class_id)
                .fetch_optional(&mut *tx)
                .await?;
            if class.is_none() {
                return Err(PracticeError::NotFound("class"));
            }
            let user: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if user.is_none() {
                return Err(PracticeError::NotFound("user"));
            }
            sqlx::query(
                "INSERT INTO class_members (class_id, user_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (class_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(class_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Removes a user from a class.
    pub async fn remove_member(&self, class_id: i64, user_id: i64) -> Result<()> {
        let done = on_writer!(self, pool => sqlx::query(
            "DELETE FROM class_members WHERE class_id = $1 AND user_id = $2",
        )
        .bind(class_id)
        .bind(user_id)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(PracticeError::NotFound("membership"));
        }
        Ok(())
    }

    /// The user's role in a class, if they are a member.
    pub async fn role_in(&self, class_id: i64, user_id: i64) -> Result<Option<ClassRole>> {
        let role: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT role FROM class_members WHERE class_id = $1 AND user_id = $2",
        )
        .bind(class_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?);
        role.as_deref().map(ClassRole::parse).transpose()
    }

    /// The class, if the user may practise in it: 404 if it does not exist,
    /// 403 if they are not a member.
    pub async fn class_for_member(
        &self,
        class_id: i64,
        user_id: i64,
    ) -> Result<(Class, ClassRole)> {
        let class = self.class(class_id).await?;
        match self.role_in(class_id, user_id).await? {
            Some(role) => Ok((class, role)),
            None => Err(PracticeError::Forbidden(
                "you are not a member of this class".into(),
            )),
        }
    }

    /// The members of a class.
    pub async fn members(&self, class_id: i64) -> Result<Vec<Membership>> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT m.user_id, u.name, m.role FROM class_members m JOIN users u ON u.id = m.user_id \
             WHERE m.class_id = $1 ORDER BY m.user_id",
        )
        .bind(class_id)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|(user_id, user_name, role)| {
                Ok(Membership {
                    class_id,
                    user_id,
                    user_name,
                    role: ClassRole::parse(&role)?,
                })
            })
            .collect()
    }

    /// The classes a user belongs to, with their role.
    pub async fn classes_of(&self, user_id: i64) -> Result<Vec<(Class, ClassRole)>> {
        let rows: Vec<(i64, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT class_id, role FROM class_members WHERE user_id = $1 ORDER BY class_id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?);
        let mut classes = Vec::with_capacity(rows.len());
        for (class_id, role) in rows {
            classes.push((self.class(class_id).await?, ClassRole::parse(&role)?));
        }
        Ok(classes)
    }
}
