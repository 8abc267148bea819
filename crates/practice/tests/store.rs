//! The store suite, run on every backend (`backends::stores`).

use serde_json::json;
use sluice_practice::prompt::effective_params;
use sluice_practice::{
    AgentInput, ClassRole, FewShotInput, KnowledgeInput, ModelError, ModelErrorKind, NewResult,
    NewSession, NewTurn, PageRequest, PracticeError, ProjectInput, ResultUsage, SessionFilter,
    SessionPatch, Store, TurnSettings,
};

use crate::backends::{replica_pairs, stores};

async fn user(store: &Store, name: &str) -> (i64, String) {
    let (user, key) = store.create_user(name).await.unwrap();
    (user.id, key.key)
}

/// A new, empty knowledge base `name` of `owner`: its id.
async fn knowledge_base(store: &Store, owner: i64, name: &str) -> i64 {
    let input = KnowledgeInput {
        name: name.into(),
        ..Default::default()
    };
    store.create_knowledge(owner, &input).await.unwrap().id
}

fn agent(name: &str, class_id: Option<i64>) -> AgentInput {
    AgentInput {
        name: name.into(),
        instructions: format!("You are {name}."),
        class_id,
        ..AgentInput::default()
    }
}

#[tokio::test]
async fn keys_authenticate_until_revoked() {
    for store in stores().await {
        let (user, key) = store.create_user("kim").await.unwrap();
        assert_eq!(
            store.authenticate(&key.key).await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(store.authenticate("sk-sluice-wrong").await.unwrap(), None);
        assert_eq!(store.authenticate("").await.unwrap(), None);
        let second = store.create_key(user.id, Some("laptop")).await.unwrap();
        assert_ne!(second.key, key.key);
        let listed = store.list_keys(user.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        let shown = format!("{listed:?}");
        assert!(
            !shown.contains(&key.key[12..]),
            "a listing never shows a key"
        );
        store.revoke_key(key.id).await.unwrap();
        assert_eq!(
            store.authenticate(&key.key).await.unwrap(),
            None,
            "{}",
            store.backend_name()
        );
        assert_eq!(store.authenticate(&second.key).await.unwrap(), Some(user));
        assert!(matches!(
            store.create_user("kim").await,
            Err(PracticeError::Conflict(_))
        ));
        assert!(matches!(
            store.create_user("  ").await,
            Err(PracticeError::BadRequest(_))
        ));
        assert!(matches!(
            store.revoke_key(9999).await,
            Err(PracticeError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn classes_hold_members_and_models() {
    for store in stores().await {
        let (teacher, _) = user(&store, "teacher").await;
        let (student, _) = user(&store, "student").await;
        let (outsider, _) = user(&store, "outsider").await;
        let models = vec![
            "gpt-small".to_string(),
            "HCX-005".into(),
            "gpt-small".into(),
        ];
        let class = store
            .create_class("Prompting 101", teacher, &models, "HCX-005")
            .await
            .unwrap();
        assert_eq!(class.models, ["gpt-small", "HCX-005"]);
        assert_eq!(class.primary_model, "HCX-005");
        store
            .add_member(class.id, student, ClassRole::Student)
            .await
            .unwrap();
        assert_eq!(
            store.role_in(class.id, teacher).await.unwrap(),
            Some(ClassRole::Instructor)
        );
        assert_eq!(
            store.role_in(class.id, student).await.unwrap(),
            Some(ClassRole::Student)
        );
        assert!(matches!(
            store.class_for_member(class.id, outsider).await,
            Err(PracticeError::Forbidden(_))
        ));
        assert!(matches!(
            store.class_for_member(999, student).await,
            Err(PracticeError::NotFound(_))
        ));
        let members = store.members(class.id).await.unwrap();
        assert_eq!(members.len(), 2);
        let class = store
            .set_class_models(class.id, &["a".into()], "b")
            .await
            .unwrap();
        assert_eq!(
            class.models,
            ["b", "a"],
            "the primary model is added when missing"
        );
        store.remove_member(class.id, student).await.unwrap();
        assert_eq!(store.role_in(class.id, student).await.unwrap(), None);
        assert_eq!(store.classes_of(teacher).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn objects_are_private_unless_shared_with_a_class() {
    for store in stores().await {
        let (teacher, _) = user(&store, "teacher").await;
        let (student, _) = user(&store, "student").await;
        let (other, _) = user(&store, "other").await;
        let class = store.create_class("c", teacher, &[], "m").await.unwrap();
        store
            .add_member(class.id, student, ClassRole::Student)
            .await
            .unwrap();

        let private = store
            .create_agent(student, &agent("mine", None))
            .await
            .unwrap();
        assert!(matches!(
            store.agent(other, private.id).await,
            Err(PracticeError::NotFound("agent"))
        ));
        assert!(matches!(
            store.agent(teacher, private.id).await,
            Err(PracticeError::NotFound(_))
        ));
        assert!(matches!(
            store.delete_agent(other, private.id).await,
            Err(PracticeError::NotFound(_))
        ));
        // Sharing needs membership of the class.
        assert!(matches!(
            store.create_agent(other, &agent("x", Some(class.id))).await,
            Err(PracticeError::Forbidden(_))
        ));
        let shared = store
            .create_agent(teacher, &agent("tutor", Some(class.id)))
            .await
            .unwrap();
        assert_eq!(store.agent(student, shared.id).await.unwrap().name, "tutor");
        assert!(matches!(
            store.agent(other, shared.id).await,
            Err(PracticeError::NotFound(_))
        ));
        // A student sees a shared object but may not change it.
        assert!(matches!(
            store
                .update_agent(student, shared.id, &agent("hijack", Some(class.id)))
                .await,
            Err(PracticeError::Forbidden(_))
        ));
        assert!(matches!(
            store.delete_agent(student, shared.id).await,
            Err(PracticeError::Forbidden(_))
        ));
        // The instructor manages what is shared with the class.
        let student_shared = store
            .create_agent(student, &agent("s", Some(class.id)))
            .await
            .unwrap();
        let renamed = store
            .update_agent(
                teacher,
                student_shared.id,
                &agent("renamed", Some(class.id)),
            )
            .await
            .unwrap();
        assert_eq!(renamed.name, "renamed");
        let page = store
            .list_agents(student, PageRequest::default())
            .await
            .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(
            store
                .list_agents(other, PageRequest::default())
                .await
                .unwrap()
                .total,
            0
        );
        store.delete_agent(student, private.id).await.unwrap();
        assert!(matches!(
            store.agent(student, private.id).await,
            Err(PracticeError::NotFound(_))
        ));

        let shot = store
            .create_few_shot(
                student,
                &FewShotInput {
                    input: "q".into(),
                    output: "a".into(),
                    note: None,
                    class_id: None,
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            store.few_shot(other, shot.id).await,
            Err(PracticeError::NotFound(_))
        ));
        let kb = knowledge_base(&store, student, "kb").await;
        assert!(matches!(
            store.knowledge(other, kb).await,
            Err(PracticeError::NotFound(_))
        ));
        assert!(matches!(
            store.search(other, &[kb], "q", 3).await,
            Err(PracticeError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn lists_are_paginated_newest_first() {
    for store in stores().await {
        let (me, _) = user(&store, "me").await;
        for i in 0..5 {
            let input = ProjectInput {
                name: format!("p{i}"),
                ..Default::default()
            };
            store.create_project(me, &input).await.unwrap();
        }
        let first = store
            .list_projects(me, PageRequest { page: 1, size: 2 })
            .await
            .unwrap();
        assert_eq!(
            (first.total, first.page, first.size, first.items.len()),
            (5, 1, 2, 2)
        );
        assert_eq!(first.items[0].name, "p4");
        let last = store
            .list_projects(me, PageRequest { page: 3, size: 2 })
            .await
            .unwrap();
        assert_eq!(last.items.len(), 1);
        assert_eq!(last.items[0].name, "p0");
        let past = store
            .list_projects(me, PageRequest { page: 9, size: 2 })
            .await
            .unwrap();
        assert!(past.items.is_empty());
        assert_eq!(past.total, 5);
    }
}

const SEOUL: &str = "서울은 한국의 수도이다. 서울의 인구는 약 천만 명이다.\n\n\
    부산은 한국 남동쪽의 항구 도시이다.\n\n\
    내일 날씨는 맑고 따뜻하겠다. 미세먼지 농도는 보통이다.\n\n\
    HCX-005 모델은 이미지와 텍스트를 함께 이해한다.";

#[tokio::test]
async fn korean_retrieval_finds_stems_bigrams_and_mixed_text() {
    for store in stores().await {
        let (me, _) = user(&store, "me").await;
        let kb = knowledge_base(&store, me, "kb").await;
        let docs = store
            .add_document(me, kb, "seoul.md", None, SEOUL.as_bytes())
            .await
            .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].format, "markdown");
        let top = |query: &'static str| {
            let store = store.clone();
            async move {
                let hits = store.search(me, &[kb], query, 1).await.unwrap();
                hits.first()
                    .map(|h| h.passage.text.clone())
                    .unwrap_or_default()
            }
        };
        // (case, query, what the top passage contains; "" for no passage).
        for (case, query, expect) in [
            ("particles", "서울에서 뭐 해?", "서울의 인구"),
            ("two-syllable query", "날씨", "맑고"),
            ("spacing variant", "미세 먼지", "미세먼지"),
            ("mixed Latin and Hangul", "HCX-005 모델", "HCX-005"),
            ("a place name", "부산", "항구"),
            ("no match", "zzzz", ""),
            ("blank", "   ", ""),
        ] {
            let hits = store.search(me, &[kb], query, 3).await.unwrap();
            match hits.first() {
                Some(hit) if !expect.is_empty() => assert!(
                    hit.passage.text.contains(expect),
                    "{case}: {query:?} found {:?}",
                    hit.passage.text
                ),
                found => assert!(
                    expect.is_empty() && found.is_none(),
                    "{case}: {query:?} found {found:?}"
                ),
            }
        }
        // The in-memory index follows every write: a document added after a
        // search is found, and a deleted one is gone.
        assert!(top("제주도").await.is_empty());
        store
            .add_document(me, kb, "jeju.txt", None, "제주도는 섬이다.".as_bytes())
            .await
            .unwrap();
        assert!(top("제주도").await.contains("섬이다"));
        let docs = store
            .list_documents(me, kb, PageRequest::default())
            .await
            .unwrap();
        assert_eq!(docs.total, 2);
        let seoul = docs.items.iter().find(|d| d.title == "seoul.md").unwrap();
        store.delete_document(me, seoul.id).await.unwrap();
        assert!(store.search(me, &[kb], "부산", 3).await.unwrap().is_empty());
        assert!(top("제주도").await.contains("섬이다"));
    }
}

/// A refused upload: the case, the file name, the bytes, and whether the
/// error is the one expected.
type BadUpload<'a> = (&'a str, &'a str, &'a [u8], fn(&PracticeError) -> bool);

#[tokio::test]
async fn bad_uploads_store_nothing() {
    for store in stores().await {
        let (me, _) = user(&store, "me").await;
        let kb = knowledge_base(&store, me, "kb").await;
        let big = vec![b'a'; sluice_practice::MAX_DOCUMENT_BYTES + 1];
        let cases: [BadUpload; 4] = [
            (
                "invalid UTF-8",
                "a.txt",
                b"ok \xff\xfe bad",
                |e| matches!(e, PracticeError::BadRequest(m) if m.contains("UTF-8")),
            ),
            (
                "a JSONL line without text names its line",
                "a.jsonl",
                b"{\"text\":\"a\"}\n{\"title\":1}\n",
                |e| matches!(e, PracticeError::BadRequest(m) if m.contains('2')),
            ),
            ("past the size limit", "a.txt", &big, |e| {
                matches!(e, PracticeError::TooLarge(_))
            }),
            ("an unknown format", "a.pdf", b"x", |e| {
                matches!(e, PracticeError::BadRequest(_))
            }),
        ];
        for (case, name, bytes, expected) in cases {
            let refused = store.add_document(me, kb, name, None, bytes).await;
            assert!(refused.as_ref().is_err_and(expected), "{case}: {refused:?}");
        }
        assert_eq!(
            store
                .list_documents(me, kb, PageRequest::default())
                .await
                .unwrap()
                .total,
            0
        );
        let ok = store
            .add_document(
                me,
                kb,
                "lines.jsonl",
                None,
                b"{\"text\":\"first\",\"title\":\"one\"}\n\n{\"text\":\"second\"}\n",
            )
            .await
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].title, "one");
    }
}

/// A generated corpus: every store ranks every query identically, scores included.
#[tokio::test]
async fn rankings_are_identical_on_every_backend() {
    let words = [
        "서울",
        "부산",
        "날씨",
        "미세먼지",
        "모델",
        "HCX",
        "여행",
        "음식",
        "역사",
        "바다",
        "rain",
        "train",
    ];
    let mut corpus = String::new();
    let mut seed = 7u64;
    for _ in 0..300 {
        let mut line = String::new();
        for _ in 0..(3 + seed % 9) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            line.push_str(words[(seed >> 33) as usize % words.len()]);
            line.push_str(if seed % 3 == 0 { "에서 " } else { " " });
        }
        corpus.push_str(&serde_json::to_string(&json!({"text": line})).unwrap());
        corpus.push('\n');
    }
    let mut rankings = Vec::new();
    for store in stores().await {
        let (me, _) = user(&store, "me").await;
        let kb = knowledge_base(&store, me, "gen").await;
        store
            .add_document(me, kb, "gen.jsonl", None, corpus.as_bytes())
            .await
            .unwrap();
        let mut all = Vec::new();
        for query in [
            "서울에서 날씨",
            "모델 HCX",
            "rain",
            "바다 여행 음식",
            "역사",
        ] {
            let hits = store.search(me, &[kb], query, 10).await.unwrap();
            assert!(!hits.is_empty(), "{query}");
            all.push(
                hits.iter()
                    .map(|h| (h.passage.id, h.score.to_bits()))
                    .collect::<Vec<_>>(),
            );
        }
        rankings.push(all);
    }
    for other in &rankings[1..] {
        assert_eq!(other, &rankings[0]);
    }
}

fn timeout() -> ModelError {
    ModelError {
        kind: ModelErrorKind::Timeout,
        message: "timed out".into(),
        status: None,
    }
}

/// A stored result of `model`: its answer, or a timeout when `text` is `None`.
pub(crate) fn result(model: &str, primary: bool, text: Option<&str>) -> NewResult {
    NewResult {
        model_name: model.into(),
        is_primary: primary,
        response_text: text.map(str::to_string),
        error: text.is_none().then(timeout),
        token_usage: ResultUsage {
            prompt_tokens: Some(3),
            ..ResultUsage::default()
        },
        latency_ms: 12,
        generation_params: effective_params(&Default::default(), None, &Default::default(), 4096),
        request: None,
        finish_reason: Some("stop".into()),
        upstream_id: None,
    }
}

#[tokio::test]
async fn sessions_store_whole_turns() {
    for store in stores().await {
        let (me, _) = user(&store, "me").await;
        let (other, _) = user(&store, "other").await;
        let class = store
            .create_class("c", me, &["a".into(), "b".into()], "a")
            .await
            .unwrap();
        let project = store
            .create_project(
                me,
                &ProjectInput {
                    name: "p".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let new = NewSession {
            user_id: me,
            class_id: class.id,
            project_id: Some(project.id),
            agent_id: None,
            title: Some("hello".into()),
            knowledge_ids: vec![],
        };
        let turn = NewTurn {
            prompt_text: "hello".into(),
            settings: TurnSettings::default(),
            results: vec![result("a", true, Some("hi")), result("b", false, None)],
        };
        let (session_id, stored) = store.create_session(&new, &turn).await.unwrap();
        assert_eq!(stored.results.len(), 2);
        assert!(stored.results[0].is_primary && !stored.results[1].is_primary);
        assert_eq!(stored.results[1].error, Some(timeout()));
        let next = NewTurn {
            prompt_text: "again".into(),
            settings: TurnSettings::default(),
            results: vec![
                result("b", true, Some("b2")),
                result("c", false, Some("c2")),
            ],
        };
        let second = store.append_turn(me, session_id, &next).await.unwrap();
        assert_eq!(second.position, 1);
        assert_eq!(
            second.results[0].session_model_id,
            stored.results[1].session_model_id
        );
        assert!(matches!(
            store.append_turn(other, session_id, &next).await,
            Err(PracticeError::NotFound(_))
        ));
        let detail = store.session(me, session_id).await.unwrap();
        // What a write returns is what a later read finds (the writes build it
        // without reading the turn back).
        assert_eq!(detail.history, [stored.clone(), second.clone()]);
        let names: Vec<_> = detail
            .summary
            .models
            .iter()
            .map(|m| m.model_name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            second.results[1].session_model_id,
            detail.summary.models[2].session_model_id
        );
        assert_eq!(detail.summary.turns, 2);
        let by_project = SessionFilter {
            project_id: Some(project.id),
            class_id: None,
        };
        assert_eq!(
            store
                .list_sessions(me, by_project, PageRequest::default())
                .await
                .unwrap()
                .total,
            1
        );
        let elsewhere = SessionFilter {
            project_id: None,
            class_id: Some(class.id + 1),
        };
        assert_eq!(
            store
                .list_sessions(me, elsewhere, PageRequest::default())
                .await
                .unwrap()
                .total,
            0
        );
        assert_eq!(
            store
                .list_sessions(other, SessionFilter::default(), PageRequest::default())
                .await
                .unwrap()
                .total,
            0
        );
        let patched = store
            .update_session(
                me,
                session_id,
                &SessionPatch {
                    title: Some(Some("renamed".into())),
                    project_id: Some(None),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (patched.session_title.as_deref(), patched.project_id),
            (Some("renamed"), None)
        );
        assert!(matches!(
            store.session(other, session_id).await,
            Err(PracticeError::NotFound(_))
        ));
        store.delete_session(me, session_id).await.unwrap();
        assert!(matches!(
            store.session(me, session_id).await,
            Err(PracticeError::NotFound(_))
        ));
    }
}

/// Issue 23: the replica that uploads grows its cached index from the
/// upload's own passages (segments, merged past a bound); another replica
/// rebuilds it from the passages' text. Both rank every query identically,
/// scores included, and each follows the other's writes.
#[tokio::test]
async fn an_index_grown_by_uploads_ranks_like_one_rebuilt_on_another_replica() {
    let (pairs, _dir) = replica_pairs().await;
    for (writer, reader) in pairs {
        let (me, _) = user(&writer, "me").await;
        let kb = knowledge_base(&writer, me, "grown").await;
        let queries = [
            "서울에서 날씨",
            "부산 항구",
            "HCX-005 모델",
            "섬",
            "미세먼지",
        ];
        let ranking = |store: Store| async move {
            let mut all = Vec::new();
            for query in queries {
                let hits = store.search(me, &[kb], query, 5).await.unwrap();
                all.push(
                    hits.iter()
                        .map(|h| (h.passage.id, h.score.to_bits()))
                        .collect::<Vec<_>>(),
                );
            }
            all
        };
        // More uploads than an index keeps segments, searched between them so
        // that each one extends the writer's cached index.
        let mut uploads = Vec::new();
        for i in 0..12 {
            let text = match i % 4 {
                0 => SEOUL.to_string(),
                1 => format!("제주도는 섬이다. 섬 {i}번의 날씨는 흐리다."),
                2 => format!("부산 항구에서 배 {i}척이 떠난다."),
                _ => format!("HCX-005 모델 {i}번과 미세먼지 예보."),
            };
            let docs = writer
                .add_document(me, kb, &format!("{i}.txt"), None, text.as_bytes())
                .await
                .unwrap();
            uploads.push(docs[0].id);
            assert!(
                !writer
                    .search(me, &[kb], "섬 날씨", 3)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let grown = ranking(writer.clone()).await;
        assert!(grown.iter().all(|hits| !hits.is_empty()), "{grown:?}");
        assert_eq!(ranking(reader.clone()).await, grown, "rebuilt elsewhere");
        // A write on either replica is seen by the other.
        reader
            .add_document(me, kb, "new.txt", None, "한라산 등산로".as_bytes())
            .await
            .unwrap();
        let found = writer.search(me, &[kb], "한라산", 3).await.unwrap();
        assert!(found[0].passage.text.contains("한라산"), "{found:?}");
        writer.delete_document(me, uploads[0]).await.unwrap();
        let hits = reader.search(me, &[kb], "서울의 인구", 5).await.unwrap();
        assert!(
            hits.iter().all(|h| h.passage.document_id != uploads[0]),
            "a deleted document is gone: {hits:?}"
        );
        assert_eq!(ranking(writer).await, ranking(reader).await);
    }
}

#[tokio::test]
async fn a_file_store_is_created_migrated_once_and_reopened() {
    let dir = std::env::temp_dir().join(format!("sluice-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("practice.db");
    let _ = std::fs::remove_file(&path);
    let store = Store::open_file(&path).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        sluice_practice::SCHEMA_VERSION
    );
    store.create_user("kept").await.unwrap();
    drop(store);
    let again = Store::open_file(&path).await.unwrap();
    assert_eq!(again.user_by_name("kept").await.unwrap().name, "kept");
    assert!(format!("{again:?}").contains("practice.db"));
    std::fs::remove_dir_all(&dir).ok();
    assert!(Store::connect("mysql://x").await.is_err());
}
