//! `sluice admin budget` and `sluice admin usage`: a class's limits and what
//! it used, straight against the practice store (wiring only: the rules live
//! in `sluice-practice`).

use clap::{Args, Subcommand};
use sluice_practice::budget::{Clock as _, Limits, SystemClock, parse_time};
use sluice_practice::{PageRequest, Store, UsageFilter};

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetCommand {
    /// Set the limits of a class as a whole, or of one student with
    /// --student; a limit left out is no limit (all left out: none).
    Set {
        /// The class id.
        class_id: i64,
        /// The student (name or id); the class as a whole when absent.
        #[arg(long)]
        student: Option<String>,
        /// Tokens (prompt and answer) per UTC day.
        #[arg(long)]
        tokens_per_day: Option<i64>,
        /// Tokens per ISO week (from Monday 00:00 UTC).
        #[arg(long)]
        tokens_per_week: Option<i64>,
        /// Runs (a new session or a next turn) per hour.
        #[arg(long)]
        runs_per_hour: Option<i64>,
        /// Cost per calendar month, in the unit of the models' prices.
        #[arg(long)]
        cost_per_month: Option<f64>,
    },
    /// The class's budget and every student's, with what is used and left, as JSON.
    Show {
        /// The class id.
        class_id: i64,
    },
}

/// Arguments of `sluice admin usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// The class id.
    class_id: i64,
    /// Per UTC day instead of per student and model.
    #[arg(long, conflicts_with = "events")]
    daily: bool,
    /// The raw events, one per model call, newest first (--page, --size).
    #[arg(long)]
    events: bool,
    /// Only this student's (name or id).
    #[arg(long)]
    student: Option<String>,
    /// Only this model's.
    #[arg(long)]
    model: Option<String>,
    /// From this date (YYYY-MM-DD, UTC) or RFC 3339 time.
    #[arg(long)]
    from: Option<String>,
    /// Until this date (the whole day in) or RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// The page of events, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    page: i64,
    /// Events per page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    size: i64,
}

fn time(flag: &str, text: Option<&str>, whole_day: bool) -> anyhow::Result<Option<i64>> {
    let Some(text) = text else { return Ok(None) };
    let ms = parse_time(text).ok_or_else(|| {
        anyhow::anyhow!("--{flag} {text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")
    })?;
    Ok(Some(if whole_day && text.trim().len() == 10 {
        ms + 86_400_000
    } else {
        ms
    }))
}

pub(crate) async fn budget(store: &Store, command: BudgetCommand) -> anyhow::Result<()> {
    match command {
        BudgetCommand::Set {
            class_id,
            student,
            tokens_per_day,
            tokens_per_week,
            runs_per_hour,
            cost_per_month,
        } => {
            let student = match student {
                Some(s) => Some(store.find_user(&s).await?.id),
                None => None,
            };
            let limits = Limits {
                tokens_per_day,
                tokens_per_week,
                runs_per_hour,
                cost_per_month,
            };
            store.set_budget(class_id, student, &limits).await?;
            let now = SystemClock.now_ms();
            let status = store
                .budgets(class_id, Some(student.unwrap_or(0)), now)
                .await?
                .into_iter()
                .find(|b| b.user_id == student)
                .expect("the class's or the member's budget is listed");
            println!("{}", serde_json::to_string(&status)?);
        }
        BudgetCommand::Show { class_id } => {
            let items = store.budgets(class_id, None, SystemClock.now_ms()).await?;
            println!("{}", serde_json::json!({ "items": items }));
        }
    }
    Ok(())
}

pub(crate) async fn usage(store: &Store, args: UsageArgs) -> anyhow::Result<()> {
    store.class(args.class_id).await?;
    let student_id = match &args.student {
        Some(s) => Some(store.find_user(s).await?.id),
        None => None,
    };
    let filter = UsageFilter {
        student_id,
        model_name: args.model.clone(),
        from_ms: time("from", args.from.as_deref(), false)?,
        to_ms: time("to", args.to.as_deref(), true)?,
    };
    let out = if args.events {
        let page = PageRequest {
            page: args.page,
            size: args.size,
        };
        serde_json::to_value(store.usage_events(args.class_id, &filter, page).await?)?
    } else if args.daily {
        serde_json::json!({ "items": store.usage_daily(args.class_id, &filter).await? })
    } else {
        serde_json::to_value(store.usage_summary(args.class_id, &filter).await?)?
    };
    println!("{out}");
    Ok(())
}
