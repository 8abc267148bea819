//! What instructors see of their class (issue 25): review of students'
//! sessions with its access record, usage, and budgets that hold. Run on
//! every backend (`backends::stores`).

use sluice_practice::budget::{LimitKind, Limits, Scope, parse_time};
use sluice_practice::{
    CallUsage, ClassRole, ClassSessionFilter, NewResult, NewSession, NewTurn, PageRequest,
    PracticeError, RunUsage, Store, TurnSettings, UsageFilter,
};

use crate::backends::stores;
use crate::store::result;

async fn user(store: &Store, name: &str) -> i64 {
    store.create_user(name).await.unwrap().0.id
}

async fn session(store: &Store, user_id: i64, class_id: i64, results: Vec<NewResult>) -> i64 {
    let new = NewSession {
        user_id,
        class_id,
        project_id: None,
        agent_id: None,
        title: Some(format!("by {user_id}")),
        knowledge_ids: vec![],
    };
    let turn = NewTurn {
        prompt_text: "hello".into(),
        settings: TurnSettings::default(),
        results,
    };
    store.create_session(&new, &turn).await.unwrap().0
}

fn not_found<T: std::fmt::Debug>(outcome: Result<T, PracticeError>) -> bool {
    matches!(outcome, Err(PracticeError::NotFound(_)))
}

fn ms(text: &str) -> i64 {
    parse_time(text).unwrap()
}

#[tokio::test]
async fn instructors_read_their_students_sessions_and_every_read_is_recorded() {
    for store in stores().await {
        let backend = store.backend_name();
        let teacher_a = user(&store, "teacher-a").await;
        let teacher_b = user(&store, "teacher-b").await;
        let kim = user(&store, "kim").await;
        let lee = user(&store, "lee").await;
        let park = user(&store, "park").await;
        let models = ["m1".to_string(), "m2".to_string()];
        let a = store
            .create_class("A", teacher_a, &models, "m1")
            .await
            .unwrap();
        let b = store
            .create_class("B", teacher_b, &models, "m1")
            .await
            .unwrap();
        for (class, student) in [(a.id, kim), (a.id, lee), (b.id, park)] {
            store
                .add_member(class, student, ClassRole::Student)
                .await
                .unwrap();
        }
        let kim_ok = session(&store, kim, a.id, vec![result("m1", true, Some("hi"))]).await;
        let kim_failed = session(
            &store,
            kim,
            a.id,
            vec![result("m1", true, Some("hi")), result("m2", false, None)],
        )
        .await;
        let lee_m2 = session(&store, lee, a.id, vec![result("m2", true, Some("yo"))]).await;
        let park_s = session(&store, park, b.id, vec![result("m1", true, Some("b"))]).await;
        // The instructor's own session in the class is not a student's.
        let own = session(&store, teacher_a, a.id, vec![result("m1", true, Some("t"))]).await;

        assert_eq!(
            store.instructor_class(a.id, teacher_a).await.unwrap().id,
            a.id
        );
        assert!(
            not_found(store.instructor_class(b.id, teacher_a).await),
            "{backend}"
        );
        assert!(
            not_found(store.instructor_class(a.id, kim).await),
            "{backend}"
        );
        assert!(
            not_found(store.instructor_class(999, teacher_a).await),
            "{backend}"
        );

        let page = PageRequest::default();
        let list = |filter: ClassSessionFilter| {
            let store = store.clone();
            async move {
                let page = store.class_sessions(a.id, &filter, page).await.unwrap();
                assert_eq!(page.total as usize, page.items.len());
                page.items
                    .iter()
                    .map(|s| s.summary.session_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(ClassSessionFilter::default()).await,
            [lee_m2, kim_failed, kim_ok],
            "{backend}: newest first, students only"
        );
        let all = store
            .class_sessions(a.id, &ClassSessionFilter::default(), page)
            .await
            .unwrap();
        assert_eq!(all.items[0].student_name, "lee");
        assert!(all.items[1].has_errors && !all.items[2].has_errors);
        let by = |f: fn(&mut ClassSessionFilter)| {
            let mut filter = ClassSessionFilter::default();
            f(&mut filter);
            filter
        };
        assert_eq!(
            list(ClassSessionFilter {
                student_id: Some(kim),
                ..ClassSessionFilter::default()
            })
            .await,
            [kim_failed, kim_ok],
            "{backend}: by student"
        );
        assert_eq!(
            list(by(|f| f.model_name = Some("m2".into()))).await,
            [lee_m2, kim_failed]
        );
        assert_eq!(list(by(|f| f.has_errors = Some(true))).await, [kim_failed]);
        assert_eq!(
            list(by(|f| f.has_errors = Some(false))).await,
            [lee_m2, kim_ok]
        );
        assert_eq!(list(by(|f| f.agent_id = Some(1))).await, Vec::<i64>::new());
        assert_eq!(
            list(by(|f| f.from = Some("2999-01-01T00:00:00Z".into()))).await,
            Vec::<i64>::new()
        );
        assert_eq!(
            list(by(|f| f.to = Some("2999-01-01T00:00:00Z".into())))
                .await
                .len(),
            3
        );
        let paged = store
            .class_sessions(
                a.id,
                &ClassSessionFilter::default(),
                PageRequest { page: 2, size: 2 },
            )
            .await
            .unwrap();
        assert_eq!((paged.total, paged.items.len()), (3, 1));

        // Reads: the instructor of A reads A's students' sessions, and nothing else.
        let read = store
            .read_student_session(teacher_a, a.id, kim_failed)
            .await
            .unwrap();
        assert!(read.read_only);
        assert_eq!((read.student_id, read.student_name.as_str()), (kim, "kim"));
        assert_eq!(read.detail.history[0].results.len(), 2);
        store
            .read_student_session(teacher_a, a.id, kim_failed)
            .await
            .unwrap();
        store
            .read_student_session(teacher_a, a.id, lee_m2)
            .await
            .unwrap();
        for (reader, class, session) in [
            (teacher_a, b.id, park_s),  // not their class
            (teacher_a, a.id, park_s),  // not a session of their class
            (teacher_b, a.id, kim_ok),  // an instructor of another class
            (lee, a.id, kim_ok),        // a student of the class
            (teacher_a, a.id, own),     // an instructor's own session is not a student's
            (teacher_a, a.id, 999_999), // no such session
        ] {
            assert!(
                not_found(store.read_student_session(reader, class, session).await),
                "{backend}: {reader} reading {session} in {class}"
            );
        }
        // A student never sees another's session.
        assert!(not_found(store.session(lee, kim_ok).await));
        assert!(not_found(store.session(kim, lee_m2).await));

        // The access record: each read, newest first, only the student's own.
        let reads = store.session_reads(kim, None, page).await.unwrap();
        assert_eq!(reads.total, 2, "{backend}: {reads:?}");
        assert!(reads.items.iter().all(|r| r.session_id == kim_failed
            && r.reader_id == teacher_a
            && r.reader_name == "teacher-a"
            && r.class_id == a.id));
        assert!(reads.items[0].id > reads.items[1].id);
        assert_eq!(store.session_reads(lee, None, page).await.unwrap().total, 1);
        assert_eq!(
            store.session_reads(park, None, page).await.unwrap().total,
            0
        );
        assert_eq!(
            store
                .session_reads(kim, Some(kim_ok), page)
                .await
                .unwrap()
                .total,
            0
        );

        let students = store.class_students(a.id).await.unwrap();
        let names: Vec<_> = students
            .iter()
            .map(|s| (s.user_name.as_str(), s.sessions))
            .collect();
        assert_eq!(names, [("kim", 2), ("lee", 1)]);
        assert!(students[0].last_active.is_some());
    }
}

#[tokio::test]
async fn budgets_refuse_with_the_numbers_and_reset_at_the_period_boundary() {
    for store in stores().await {
        let backend = store.backend_name();
        let teacher = user(&store, "teacher").await;
        let kim = user(&store, "kim").await;
        let lee = user(&store, "lee").await;
        let class = store
            .create_class("A", teacher, &["m1".into()], "m1")
            .await
            .unwrap();
        for s in [kim, lee] {
            store
                .add_member(class.id, s, ClassRole::Student)
                .await
                .unwrap();
        }
        let limits = Limits {
            tokens_per_day: Some(1_000),
            runs_per_hour: Some(2),
            ..Limits::default()
        };
        store
            .set_budget(class.id, Some(kim), &limits)
            .await
            .unwrap();
        let now = ms("2026-12-09T23:59:50Z");
        let first = store.reserve(class.id, kim, 100, 0.0, now).await.unwrap();
        store
            .reserve(class.id, kim, 100, 0.0, now + 1)
            .await
            .unwrap();
        let Err(PracticeError::OverBudget(refusal)) =
            store.reserve(class.id, kim, 100, 0.0, now + 2).await
        else {
            panic!("{backend}: a third run in the hour is refused");
        };
        assert_eq!(refusal.limit, LimitKind::RunsPerHour);
        assert_eq!(refusal.scope, Scope::Student);
        assert_eq!(
            (refusal.limit_value, refusal.used, refusal.remaining),
            (2.0, 2.0, 0.0)
        );
        assert_eq!(refusal.resets_at, "2026-12-10T00:00:00Z");
        assert_eq!(refusal.retry_after, 10);
        // Another student is not held by kim's limits.
        store.reserve(class.id, lee, 100, 0.0, now).await.unwrap();

        // At the boundary the hour and the day start again.
        let next = ms("2026-12-10T00:00:00Z");
        store.reserve(class.id, kim, 900, 0.0, next).await.unwrap();
        let Err(PracticeError::OverBudget(refusal)) =
            store.reserve(class.id, kim, 101, 0.0, next + 1).await
        else {
            panic!("{backend}: tokens per day hold");
        };
        assert_eq!(refusal.limit, LimitKind::TokensPerDay);
        assert_eq!((refusal.remaining, refusal.requested), (100.0, 101.0));
        assert_eq!(refusal.resets_at, "2026-12-11T00:00:00Z");
        // Settling gives back what the reservation held beyond real use...
        store
            .settle(
                &first,
                &RunUsage {
                    calls: vec![CallUsage {
                        model_name: "m1".into(),
                        prompt_tokens: 10,
                        completion_tokens: 5,
                        error_kind: None,
                        latency_ms: 40,
                        cost: None,
                    }],
                    ..RunUsage::default()
                },
                now + 5,
            )
            .await
            .unwrap();
        // ...in the period the run was reserved in (the day before).
        let status = store.budgets(class.id, Some(kim), now + 5).await.unwrap();
        let kim_status = &status[1];
        assert_eq!(kim_status.user_id, Some(kim));
        let tokens = &kim_status.status[0];
        assert_eq!(tokens.limit, LimitKind::TokensPerDay);
        assert_eq!(
            (tokens.used, tokens.remaining),
            (115.0, Some(885.0)),
            "{backend}"
        );

        // A class-wide cost cap counts every member's runs.
        store
            .set_budget(
                class.id,
                None,
                &Limits {
                    cost_per_month: Some(1.0),
                    ..Limits::default()
                },
            )
            .await
            .unwrap();
        store.reserve(class.id, lee, 1, 0.75, next).await.unwrap();
        let Err(PracticeError::OverBudget(refusal)) =
            store.reserve(class.id, lee, 1, 0.5, next).await
        else {
            panic!("{backend}: the class's cost cap holds");
        };
        assert_eq!(refusal.scope, Scope::Class);
        assert_eq!(refusal.limit, LimitKind::CostPerMonth);
        assert_eq!(refusal.resets_at, "2027-01-01T00:00:00Z");
        // Removing every limit removes the budget.
        store
            .set_budget(class.id, None, &Limits::default())
            .await
            .unwrap();
        store.reserve(class.id, lee, 1, 0.5, next).await.unwrap();
        // Limits are for members, and never negative.
        assert!(not_found(
            store.set_budget(class.id, Some(999), &limits).await
        ));
        assert!(matches!(
            store
                .set_budget(
                    class.id,
                    Some(kim),
                    &Limits {
                        runs_per_hour: Some(-1),
                        ..limits
                    }
                )
                .await,
            Err(PracticeError::BadRequest(_))
        ));
    }
}

#[tokio::test]
async fn concurrent_reservations_never_pass_the_limit() {
    for store in stores().await {
        let teacher = user(&store, "teacher").await;
        let kim = user(&store, "kim").await;
        let class = store
            .create_class("A", teacher, &["m1".into()], "m1")
            .await
            .unwrap();
        store
            .add_member(class.id, kim, ClassRole::Student)
            .await
            .unwrap();
        let limits = Limits {
            tokens_per_day: Some(205),
            ..Limits::default()
        };
        store
            .set_budget(class.id, Some(kim), &limits)
            .await
            .unwrap();
        let now = ms("2026-12-09T12:00:00Z");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.spawn(async move { store.reserve(class.id, kim, 10, 0.0, now).await });
        }
        let (mut granted, mut refused) = (0, 0);
        while let Some(outcome) = tasks.join_next().await {
            match outcome.unwrap() {
                Ok(_) => granted += 1,
                Err(PracticeError::OverBudget(r)) => {
                    assert_eq!(r.limit, LimitKind::TokensPerDay);
                    assert!(r.used + 10.0 > 205.0, "{r:?}");
                    refused += 1;
                }
                Err(e) => panic!("{}: {e}", store.backend_name()),
            }
        }
        assert_eq!((granted, refused), (20, 30), "{}", store.backend_name());
    }
}

#[tokio::test]
async fn usage_is_aggregated_per_student_model_and_day() {
    for store in stores().await {
        let backend = store.backend_name();
        let teacher = user(&store, "teacher").await;
        let kim = user(&store, "kim").await;
        let lee = user(&store, "lee").await;
        let class = store
            .create_class("A", teacher, &["m1".into(), "m2".into()], "m1")
            .await
            .unwrap();
        let call =
            |model: &str, p: i64, c: i64, latency: i64, error: bool, cost: Option<f64>| CallUsage {
                model_name: model.into(),
                prompt_tokens: p,
                completion_tokens: c,
                error_kind: error.then(|| "timeout".to_string()),
                latency_ms: latency,
                cost,
            };
        let day1 = ms("2026-12-09T10:00:00Z");
        let day2 = ms("2026-12-10T10:00:00Z");
        let runs = [
            (
                kim,
                day1,
                vec![
                    call("m1", 10, 5, 100, false, Some(0.5)),
                    call("m2", 10, 0, 300, true, None),
                ],
            ),
            (kim, day2, vec![call("m1", 20, 10, 200, false, Some(1.0))]),
            (lee, day2, vec![call("m2", 7, 3, 50, false, None)]),
        ];
        for (who, at, calls) in runs {
            let reservation = store.reserve(class.id, who, 1000, 0.0, at).await.unwrap();
            let usage = RunUsage {
                session_id: Some(1),
                agent_id: None,
                calls,
            };
            store.settle(&reservation, &usage, at + 1).await.unwrap();
        }
        let all = UsageFilter::default();
        let summary = store.usage_summary(class.id, &all).await.unwrap();
        let t = &summary.totals;
        assert_eq!(
            (
                t.runs,
                t.calls,
                t.prompt_tokens,
                t.completion_tokens,
                t.errors
            ),
            (3, 4, 47, 18, 1),
            "{backend}"
        );
        assert_eq!(
            (t.latency_p50_ms, t.latency_p90_ms, t.latency_p99_ms),
            (Some(100), Some(300), Some(300))
        );
        assert_eq!(t.cost, Some(1.5));
        let kim_usage = &summary.by_student[0];
        assert_eq!(
            (
                kim_usage.user_name.as_str(),
                kim_usage.stats.runs,
                kim_usage.stats.calls
            ),
            ("kim", 2, 3)
        );
        let m2 = &summary.by_model[1];
        assert_eq!(
            (
                m2.model_name.as_str(),
                m2.stats.calls,
                m2.stats.errors,
                m2.stats.cost
            ),
            ("m2", 2, 1, None)
        );

        let daily = store.usage_daily(class.id, &all).await.unwrap();
        let days: Vec<_> = daily
            .iter()
            .map(|d| (d.day.as_str(), d.stats.calls, d.stats.prompt_tokens))
            .collect();
        assert_eq!(days, [("2026-12-09", 2, 20), ("2026-12-10", 2, 27)]);

        let filter = UsageFilter {
            student_id: Some(kim),
            from_ms: Some(ms("2026-12-10")),
            ..UsageFilter::default()
        };
        let events = store
            .usage_events(class.id, &filter, PageRequest::default())
            .await
            .unwrap();
        assert_eq!(events.total, 1);
        assert_eq!(events.items[0].completion_tokens, 10);
        assert_eq!(events.items[0].at, "2026-12-10T10:00:00Z");
        let m2_only = UsageFilter {
            model_name: Some("m2".into()),
            to_ms: Some(ms("2026-12-10")),
            ..UsageFilter::default()
        };
        let events = store
            .usage_events(class.id, &m2_only, PageRequest::default())
            .await
            .unwrap();
        assert_eq!(events.total, 1);
        assert_eq!(events.items[0].error_kind.as_deref(), Some("timeout"));
        let paged = store
            .usage_events(class.id, &all, PageRequest { page: 2, size: 3 })
            .await
            .unwrap();
        assert_eq!((paged.total, paged.items.len()), (4, 1));
        // Settled runs count what they used: 15 + 10, 30, 10 tokens.
        let status = store.budgets(class.id, None, day2 + 10).await.unwrap();
        assert_eq!(
            status[0].status[0].used, 40.0,
            "{backend}: the class's tokens of day 2"
        );
    }
}
