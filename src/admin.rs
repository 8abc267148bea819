//! `sluice admin`: users, keys, classes, members, and importing knowledge and
//! few-shot examples, straight against the practice store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sluice_practice::{ClassRole, FewShotInput, KnowledgeInput, Settings, SettingsError, Store};

/// Arguments of `sluice admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Practice store: sqlite:PATH, sqlite::memory: or postgres://... [default:
    /// sluice.db in the data directory; env: SLUICE_DATABASE_URL].
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Classes, their members and models.
    #[command(subcommand)]
    Class(ClassCommand),
    /// Budgets: limits per class and per student.
    #[command(subcommand)]
    Budget(crate::admin_usage::BudgetCommand),
    /// A class's usage as JSON: in all, per student and per model (runs,
    /// calls, tokens, errors, latency percentiles, cost); --daily per day;
    /// --events the raw events.
    Usage(crate::admin_usage::UsageArgs),
    /// Import a knowledge base from files (.txt, .md, .jsonl); prints its id.
    ImportKnowledge {
        /// The owner (name or id).
        #[arg(long)]
        user: String,
        /// The knowledge base's name.
        #[arg(long)]
        name: String,
        /// Share it with this class.
        #[arg(long)]
        class: Option<i64>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Import few-shot examples from a JSONL file of {"input","output","note"}; prints their ids.
    ImportFewShots {
        /// The owner (name or id).
        #[arg(long)]
        user: String,
        /// Share them with this class.
        #[arg(long)]
        class: Option<i64>,
        /// The file.
        file: PathBuf,
    },
    /// Export a class's results, votes and ratings as JSONL (each line a
    /// request `sluice trim --jsonl` reads) or CSV, streamed.
    Export {
        /// The class id.
        class_id: i64,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// all, results, votes or ratings.
        #[arg(long, default_value = "all", value_parser = ["all", "results", "votes", "ratings"])]
        kind: String,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The Bradley–Terry leaderboard of blind votes as JSON: of one class, or
    /// of every class when --class is left out.
    Leaderboard {
        /// Only this class's votes.
        #[arg(long)]
        class: Option<i64>,
        /// Only prompts the router put in this domain ("" for none).
        #[arg(long)]
        domain: Option<String>,
        /// Only turns run with this agent.
        #[arg(long)]
        agent: Option<i64>,
        /// Only turns with this style preset.
        #[arg(long)]
        style: Option<String>,
        /// Bootstrap resamples for the 95% intervals.
        #[arg(long, default_value_t = 1000)]
        resamples: usize,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; prints their first API key (the only time it is shown).
    Create {
        /// Unique name.
        name: String,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// A new key for a user; prints it (the only time it is shown).
    Create {
        /// The user (name or id).
        user: String,
        /// A label to tell keys apart.
        #[arg(long)]
        label: Option<String>,
    },
    /// A user's keys (prefixes only).
    List {
        /// The user (name or id).
        user: String,
    },
    /// Revoke a key by id: it stops working at once.
    Revoke {
        /// The key's id (from `key list`).
        key_id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum ClassCommand {
    /// Create a class; prints its id.
    Create {
        /// Name.
        name: String,
        /// The first instructor (name or id).
        #[arg(long)]
        instructor: String,
        /// Models its members may use, comma separated.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// The model used when a run names none.
        #[arg(long)]
        primary: String,
    },
    /// Add a user to a class (as a student unless --instructor).
    AddMember {
        /// The class id.
        class_id: i64,
        /// The user (name or id).
        user: String,
        /// Make them an instructor.
        #[arg(long)]
        instructor: bool,
    },
    /// Remove a user from a class.
    RemoveMember {
        /// The class id.
        class_id: i64,
        /// The user (name or id).
        user: String,
    },
    /// Replace a class's models.
    SetModels {
        /// The class id.
        class_id: i64,
        /// Models, comma separated.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// The primary model.
        #[arg(long)]
        primary: String,
    },
    /// Show a class and its members as JSON.
    Show {
        /// The class id.
        class_id: i64,
    },
}

/// Runs an admin command.
pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::default();
    settings.apply_vars(|name| std::env::var(name).ok());
    if let Some(url) = args.database {
        settings.database = Some(url);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = settings.open_store().await.map_err(|e| match e {
            SettingsError::DataDir { dir, error } => {
                anyhow::Error::new(error).context(format!("cannot create {}", dir.display()))
            }
            SettingsError::Database { url, error } => {
                anyhow::Error::new(error).context(format!("cannot open {url}"))
            }
            e => e.into(),
        })?;
        execute(&store, args.command).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn execute(store: &Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::User(UserCommand::Create { name }) => {
            let (user, key) = store.create_user(&name).await?;
            eprintln!(
                "user {} (id {}) created; their API key (shown only now):",
                user.name, user.id
            );
            println!("{}", key.key);
        }
        AdminCommand::User(UserCommand::List) => {
            for user in store.list_users().await? {
                println!("{}\t{}\t{}", user.id, user.name, user.created_at);
            }
        }
        AdminCommand::Key(KeyCommand::Create { user, label }) => {
            let user = store.find_user(&user).await?;
            let key = store.create_key(user.id, label.as_deref()).await?;
            eprintln!("key {} for {} (shown only now):", key.id, user.name);
            println!("{}", key.key);
        }
        AdminCommand::Key(KeyCommand::List { user }) => {
            let user = store.find_user(&user).await?;
            for key in store.list_keys(user.id).await? {
                let state = key
                    .revoked_at
                    .as_deref()
                    .map_or("active".to_string(), |at| format!("revoked {at}"));
                println!(
                    "{}\t{}…\t{}\t{}",
                    key.id,
                    key.prefix,
                    key.label.unwrap_or_default(),
                    state
                );
            }
        }
        AdminCommand::Key(KeyCommand::Revoke { key_id }) => {
            store.revoke_key(key_id).await?;
            eprintln!("key {key_id} revoked");
        }
        AdminCommand::Class(ClassCommand::Create {
            name,
            instructor,
            models,
            primary,
        }) => {
            let instructor = store.find_user(&instructor).await?;
            let class = store
                .create_class(&name, instructor.id, &models, &primary)
                .await?;
            println!("{}", class.id);
        }
        AdminCommand::Class(ClassCommand::AddMember {
            class_id,
            user,
            instructor,
        }) => {
            let user = store.find_user(&user).await?;
            let role = if instructor {
                ClassRole::Instructor
            } else {
                ClassRole::Student
            };
            store.add_member(class_id, user.id, role).await?;
            eprintln!(
                "{} is now a{} {} of class {class_id}",
                user.name,
                if instructor { "n" } else { "" },
                role.as_str()
            );
        }
        AdminCommand::Class(ClassCommand::RemoveMember { class_id, user }) => {
            let user = store.find_user(&user).await?;
            store.remove_member(class_id, user.id).await?;
        }
        AdminCommand::Class(ClassCommand::SetModels {
            class_id,
            models,
            primary,
        }) => {
            let class = store.set_class_models(class_id, &models, &primary).await?;
            println!("{}", serde_json::to_string(&class)?);
        }
        AdminCommand::Class(ClassCommand::Show { class_id }) => {
            let class = store.class(class_id).await?;
            let members = store.members(class_id).await?;
            println!(
                "{}",
                serde_json::json!({"class": class, "members": members})
            );
        }
        AdminCommand::Budget(command) => crate::admin_usage::budget(store, command).await?,
        AdminCommand::Usage(args) => crate::admin_usage::usage(store, args).await?,
        AdminCommand::ImportKnowledge {
            user,
            name,
            class,
            files,
        } => {
            let user = store.find_user(&user).await?;
            let input = KnowledgeInput {
                name,
                description: String::new(),
                class_id: class,
            };
            let kb = store.create_knowledge(user.id, &input).await?;
            // All or nothing, like import-few-shots: one file that cannot be
            // read or stored takes the base and the files before it away.
            let imported: anyhow::Result<()> = async {
                for file in &files {
                    let bytes = std::fs::read(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let docs = store
                        .add_document(user.id, kb.id, &name, None, &bytes)
                        .await
                        .with_context(|| format!("{}", file.display()))?;
                    let passages: i64 = docs.iter().map(|d| d.passages).sum();
                    eprintln!(
                        "{}: {} documents, {passages} passages",
                        file.display(),
                        docs.len()
                    );
                }
                Ok(())
            }
            .await;
            if let Err(e) = imported {
                store
                    .delete_knowledge(user.id, kb.id)
                    .await
                    .context("cannot remove the half-imported knowledge base")?;
                return Err(e.context("nothing was imported"));
            }
            println!("{}", kb.id);
        }
        AdminCommand::ImportFewShots { user, class, file } => {
            let user = store.find_user(&user).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut inputs = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let value: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not JSON", file.display(), i + 1))?;
                let mut input = sluice_practice::parse_few_shot(&value, None)
                    .with_context(|| format!("{}:{}", file.display(), i + 1))?;
                if class.is_some() {
                    input.class_id = class;
                }
                inputs.push(input);
            }
            if inputs.is_empty() {
                bail!("{}: no examples", file.display());
            }
            for input in &inputs {
                let shot: sluice_practice::FewShotExample = store
                    .create_few_shot(user.id, input as &FewShotInput)
                    .await?;
                println!("{}", shot.id);
            }
        }
        AdminCommand::Export {
            class_id,
            format,
            kind,
            output,
        } => {
            let format = sluice_practice::ExportFormat::parse(&format).expect("clap checked it");
            let kind = sluice_practice::ExportKind::parse(&kind).expect("clap checked it");
            export(store, class_id, format, kind, output).await?;
        }
        AdminCommand::Leaderboard {
            class,
            domain,
            agent,
            style,
            resamples,
            seed,
        } => {
            let filter = sluice_practice::VoteFilter {
                class_id: class,
                domain,
                agent_id: agent,
                style_preset: style,
            };
            let options = sluice_practice::leaderboard::Options {
                resamples,
                seed,
                ..Default::default()
            };
            let board = store.leaderboard(&filter, &options).await?;
            println!("{}", serde_json::to_string_pretty(&board)?);
        }
    }
    Ok(())
}

/// Streams a class's export to `output` (stdout when `None`); a closed pipe
/// (`| head`) ends it quietly.
async fn export(
    store: &Store,
    class_id: i64,
    format: sluice_practice::ExportFormat,
    kind: sluice_practice::ExportKind,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write;
    store.class_exists(class_id).await?;
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let producer = store.export_class(class_id, format, kind, tx);
    let consumer = async {
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = out.write_all(&chunk) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(anyhow::Error::new(e).context("cannot write the export"));
            }
        }
        match out.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::new(e).context("cannot write the export"))
            }
            _ => Ok(()),
        }
    };
    let (stats, written) = tokio::join!(producer, consumer);
    written?;
    let stats = stats?;
    eprintln!(
        "class {class_id}: {} results, {} votes, {} ratings, {} bytes",
        stats.results, stats.votes, stats.ratings, stats.bytes
    );
    Ok(())
}
