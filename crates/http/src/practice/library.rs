//! The caller's library: agents, projects, few-shot examples and knowledge
//! bases (create, list, read, update, delete), a knowledge base's documents,
//! and BM25 search over knowledge bases.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sluice_practice::PracticeError;
use sluice_practice::retrieval::DocumentFormat;
use sluice_practice::validate::{json_body, path_id};

use super::answer::{Answer, no_content, ok, page};
use super::caller::Caller;

/// The handlers of one library object type: create, list, read, update, delete.
macro_rules! library_handlers {
    ($create:ident, $list:ident, $get:ident, $patch:ident, $delete:ident, $id:literal,
     $parse:path, $store_create:ident, $store_list:ident, $store_get:ident, $store_update:ident, $store_delete:ident) => {
        pub(super) async fn $create(caller: Caller, body: Bytes) -> Answer {
            let input = $parse(&json_body(&body)?, None)?;
            ok(
                StatusCode::CREATED,
                &caller
                    .practice
                    .store()
                    .$store_create(caller.user.id, &input)
                    .await?,
            )
        }

        pub(super) async fn $list(
            caller: Caller,
            Query(query): Query<HashMap<String, String>>,
        ) -> Answer {
            let page = page(&query)?;
            ok(
                StatusCode::OK,
                &caller
                    .practice
                    .store()
                    .$store_list(caller.user.id, page)
                    .await?,
            )
        }

        pub(super) async fn $get(caller: Caller, Path(id): Path<String>) -> Answer {
            let id = path_id(&id, $id)?;
            ok(
                StatusCode::OK,
                &caller
                    .practice
                    .store()
                    .$store_get(caller.user.id, id)
                    .await?,
            )
        }

        pub(super) async fn $patch(caller: Caller, Path(id): Path<String>, body: Bytes) -> Answer {
            let id = path_id(&id, $id)?;
            let body = json_body(&body)?;
            let store = caller.practice.store();
            let current = serde_json::to_value(store.$store_get(caller.user.id, id).await?)
                .expect("serializable");
            let input = $parse(&body, Some(current))?;
            ok(
                StatusCode::OK,
                &store.$store_update(caller.user.id, id, &input).await?,
            )
        }

        pub(super) async fn $delete(caller: Caller, Path(id): Path<String>) -> Answer {
            let id = path_id(&id, $id)?;
            caller
                .practice
                .store()
                .$store_delete(caller.user.id, id)
                .await?;
            no_content()
        }
    };
}

library_handlers!(
    create_agent,
    list_agents,
    get_agent,
    patch_agent,
    delete_agent,
    "agent_id",
    sluice_practice::parse_agent,
    create_agent,
    list_agents,
    agent,
    update_agent,
    delete_agent
);
library_handlers!(
    create_project,
    list_projects,
    get_project,
    patch_project,
    delete_project,
    "project_id",
    sluice_practice::parse_project,
    create_project,
    list_projects,
    project,
    update_project,
    delete_project
);
library_handlers!(
    create_few_shot,
    list_few_shots,
    get_few_shot,
    patch_few_shot,
    delete_few_shot,
    "example_id",
    sluice_practice::parse_few_shot,
    create_few_shot,
    list_few_shots,
    few_shot,
    update_few_shot,
    delete_few_shot
);
library_handlers!(
    create_knowledge,
    list_knowledge,
    get_knowledge,
    patch_knowledge,
    delete_knowledge,
    "knowledge_id",
    sluice_practice::parse_knowledge,
    create_knowledge,
    list_knowledge,
    knowledge,
    update_knowledge,
    delete_knowledge
);

pub(super) async fn upload_document(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    let id = path_id(&id, "knowledge_id")?;
    let Some(file_name) = query
        .get("file_name")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    else {
        return Err(PracticeError::field(
            vec![Value::from("query"), Value::from("file_name")],
            "missing",
            "Field required",
        )
        .into());
    };
    let format = match query.get("format").map(String::as_str) {
        None => None,
        Some("text" | "txt") => Some(DocumentFormat::Text),
        Some("markdown" | "md") => Some(DocumentFormat::Markdown),
        Some("jsonl") => Some(DocumentFormat::Jsonl),
        Some(_) => {
            return Err(PracticeError::field(
                vec![Value::from("query"), Value::from("format")],
                "enum",
                "Input should be 'text', 'markdown' or 'jsonl'",
            )
            .into());
        }
    };
    let documents = caller
        .practice
        .store()
        .add_document(caller.user.id, id, file_name, format, &body)
        .await?;
    ok(StatusCode::CREATED, &json!({"items": documents}))
}

pub(super) async fn list_documents(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let id = path_id(&id, "knowledge_id")?;
    let page = page(&query)?;
    ok(
        StatusCode::OK,
        &caller
            .practice
            .store()
            .list_documents(caller.user.id, id, page)
            .await?,
    )
}

pub(super) async fn delete_document(
    caller: Caller,
    Path((kb, doc)): Path<(String, String)>,
) -> Answer {
    let kb = path_id(&kb, "knowledge_id")?;
    let doc = path_id(&doc, "document_id")?;
    let store = caller.practice.store();
    if store.document(caller.user.id, doc).await?.knowledge_id != kb {
        return Err(PracticeError::NotFound("document").into());
    }
    store.delete_document(caller.user.id, doc).await?;
    no_content()
}

pub(super) async fn search(caller: Caller, body: Bytes) -> Answer {
    use sluice_practice::validate::{Checker, at};
    let body = json_body(&body)?;
    let loc = vec![Value::from("body")];
    let mut check = Checker::new();
    let (mut ids, mut query, mut k) = (Vec::new(), String::new(), 5);
    if let Some(map) = check.object(&body, &loc) {
        check.no_unknown(map, &["knowledge_ids", "query", "k"], &loc);
        ids = check
            .id_list(map, "knowledge_ids", &loc)
            .unwrap_or_default();
        if ids.is_empty() && check.is_ok() {
            check.error(
                at(&loc, "knowledge_ids"),
                "too_short",
                "List should have at least 1 item after validation, not 0",
            );
        }
        query = check
            .required_string(map, "query", &loc, 1..=10_000, true)
            .unwrap_or_default();
        k = check.int(map, "k", &loc, 1, 100).unwrap_or(5);
    }
    check.finish()?;
    let hits = caller
        .practice
        .store()
        .search(caller.user.id, &ids, &query, k as usize)
        .await?;
    ok(StatusCode::OK, &json!({"items": hits}))
}
