//! The shape of the source tree: no import circles between modules, and no
//! source file in the HTTP and practice crates too long to hold in mind.
//!
//! The module check reads every crate's sources (`crates/*/src` and the root
//! package's `src/`) as text, builds a graph of which module uses which, and
//! asserts that it is acyclic. A graph is built for every *scope*: the crate
//! root, whose nodes are the crate's top-level modules, and every folder module
//! (`foo/mod.rs` or `foo.rs` beside `foo/`), whose nodes are its submodules. A
//! reference from module `S` to module `T` becomes an edge in the scope of
//! their nearest common ancestor `P`, between the child of `P` that holds `S`
//! and the child of `P` that holds `T`. So `crate::a::x` used in `b/c.rs` is
//! the edge `b -> a` at the crate root, and `super::d::y` used in `b/c.rs` is
//! the edge `c -> d` in scope `b`.
//!
//! How references are found (simple, line-based, and honest about it):
//! - `use` declarations (any visibility), joined across lines up to their `;`,
//!   with grouped forms (`use crate::{a, b::{c, d}}`), `self` in a group,
//!   `as` renames and globs expanded into one path each.
//! - Inline paths in code: every `crate::`, `super::` and `self::` path, and
//!   nothing else (a child module named without a prefix outside a `use` is
//!   not seen).
//! - Paths start at the crate root (`crate::`), at an ancestor (`super::`,
//!   repeated), at the current module (`self::`), or at a child module of the
//!   current module (2018 uniform paths). Anything else is an external crate
//!   and ignored.
//! - A path is walked down the module tree as far as its segments name module
//!   files; when the next segment is not a module, the module's `pub use`
//!   re-exports are consulted (so `crate::Config` counts as a use of `config`
//!   when `lib.rs` re-exports `config::Config`).
//!
//! Its limits:
//! - Modules are files: inline `mod name { ... }` blocks (other than tests)
//!   count as part of the file that holds them, and `#[path]` is not followed.
//! - Inline `#[cfg(test)] mod ... { ... }` blocks are skipped, from the
//!   attribute to the first line that is a lone `}` in column 0 (rustfmt's
//!   layout); test code may use anything.
//! - Comment lines (`//`, `///`, `//!`) are skipped, and code after ` // ` on a
//!   line is dropped; paths inside string literals are read as code.
//! - A use of a module's own items from below (a child's `super::x` where `x`
//!   is defined in the parent's file) and a use of a child from its parent's
//!   file are not edges: a folder module's own file is the facade of its
//!   children, not one of them.
//! - Macros, `#[path]` and `include!` are not expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's absolute path inside its crate; empty for the crate root.
type ModPath = Vec<String>;

/// The longest a non-test source file of the checked crates may be.
const MAX_LINES: usize = 600;

/// Crates (folders under `crates/`) whose source files must stay under
/// [`MAX_LINES`].
const LINE_CAPPED: [&str; 2] = ["http", "practice"];

#[test]
fn no_import_circles_in_any_crate() {
    let roots = crate_sources();
    assert!(roots.len() >= 7, "found only {roots:?}");
    let mut circles = Vec::new();
    for (name, src) in &roots {
        let krate = Crate::read(src);
        for (scope, graph) in krate.scopes() {
            let scope = scope.join("::");
            for (members, cycle) in circles_in(&graph) {
                let shown = if scope.is_empty() {
                    "the crate root"
                } else {
                    &scope
                };
                let mut lines = vec![format!("{name}, in {shown}: {}", cycle.join(" -> "))];
                lines.push(format!("    on circles together: {members:?}"));
                for pair in cycle.windows(2) {
                    let witness = &graph[&pair[0]][&pair[1]];
                    lines.push(format!("    {} -> {}: {witness}", pair[0], pair[1]));
                }
                circles.push(lines.join("\n"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles between modules:\n{}",
        circles.join("\n")
    );
}

/// Every group of modules that lie on circles together (a strongly connected
/// component with more than one module), with one circle through it.
fn circles_in(graph: &Graph) -> Vec<(BTreeSet<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut covered = BTreeSet::new();
    for node in graph.keys() {
        if covered.contains(node) {
            continue;
        }
        let members = circle_members(graph, node);
        if members.is_empty() {
            continue;
        }
        let inside: Graph = graph
            .iter()
            .filter(|(from, _)| members.contains(*from))
            .map(|(from, edges)| {
                let edges = edges
                    .iter()
                    .filter(|(to, _)| members.contains(*to))
                    .map(|(to, at)| (to.clone(), at.clone()))
                    .collect();
                (from.clone(), edges)
            })
            .collect();
        let cycle = find_cycle(&inside).expect("a strongly connected group has a circle");
        covered.extend(members.iter().cloned());
        found.push((members, cycle));
    }
    found
}

#[test]
fn capped_crates_source_files_are_short() {
    let mut long = Vec::new();
    for (name, src) in crate_sources() {
        if !LINE_CAPPED.iter().any(|c| name == format!("crates/{c}")) {
            continue;
        }
        for file in rust_files(&src) {
            let lines = fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines: {long:?}"
    );
}

/// The parser resolves what it should, so that a passing check means something.
#[test]
fn the_parser_reads_grouped_uses_and_inline_paths() {
    let mut uses = Vec::new();
    expand("crate::{a, b::{self, c as d}, e::*}", &mut uses);
    assert_eq!(
        uses,
        ["crate::a", "crate::b", "crate::b::c", "crate::e"].map(String::from)
    );
    let inline = inline_paths("let x = crate::state::AppState::new(super::y::z()); // crate::no");
    assert_eq!(
        inline,
        ["crate::state::AppState::new", "super::y::z"].map(String::from)
    );
    assert!(inline_paths("a_crate::b").is_empty());

    let graph = BTreeMap::from([
        (
            "a".to_owned(),
            BTreeMap::from([("b".to_owned(), String::new())]),
        ),
        (
            "b".to_owned(),
            BTreeMap::from([("a".to_owned(), String::new())]),
        ),
    ]);
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
}

/// `(name, src folder)` of every crate in the workspace, the root package too.
fn crate_sources() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = vec![("sluice (root)".to_owned(), root.join("src"))];
    let mut crates: Vec<_> = fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    crates.sort();
    for path in crates {
        let name = format!("crates/{}", path.file_name().unwrap().to_string_lossy());
        found.push((name, path.join("src")));
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// One crate's modules (one per file) and what each of them uses.
struct Crate {
    /// Every module, with the file it lives in.
    modules: BTreeMap<ModPath, PathBuf>,
    /// `pub use` re-exports per module: exported name -> absolute path.
    exports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    /// Per module: the paths it names, each with `file:line`.
    references: BTreeMap<ModPath, Vec<(Vec<String>, String)>>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut modules = BTreeMap::new();
        for file in rust_files(src) {
            let relative = file.strip_prefix(src).unwrap();
            if relative.starts_with("bin") {
                continue; // each file there is a crate of its own
            }
            modules.insert(module_path(relative), file);
        }
        let mut krate = Crate {
            modules,
            exports: BTreeMap::new(),
            references: BTreeMap::new(),
        };
        let files: Vec<_> = krate.modules.clone().into_iter().collect();
        for (module, file) in files {
            let text = fs::read_to_string(&file).unwrap();
            let shown = file.display().to_string();
            for (line, statement) in code_lines(&text) {
                let at = format!("{shown}:{line}");
                if let Some((public, tree)) = use_tree(&statement) {
                    let mut paths = Vec::new();
                    expand(tree, &mut paths);
                    for (path, name) in paths.iter().zip(use_names(tree)) {
                        let Some(absolute) = krate.absolute(&module, path) else {
                            continue;
                        };
                        if public && name != "*" {
                            krate
                                .exports
                                .entry(module.clone())
                                .or_default()
                                .insert(name, absolute.clone());
                        }
                        krate
                            .references
                            .entry(module.clone())
                            .or_default()
                            .push((absolute, at.clone()));
                    }
                } else {
                    for path in inline_paths(&statement) {
                        if let Some(absolute) = krate.absolute(&module, &path) {
                            krate
                                .references
                                .entry(module.clone())
                                .or_default()
                                .push((absolute, at.clone()));
                        }
                    }
                }
            }
        }
        krate
    }

    /// `path` as written in `module`, made absolute; `None` for an external crate.
    fn absolute(&self, module: &ModPath, path: &str) -> Option<Vec<String>> {
        let mut segments = path.split("::").map(str::to_owned).peekable();
        let mut base: ModPath = match segments.peek()?.as_str() {
            "crate" => {
                segments.next();
                Vec::new()
            }
            "self" => {
                segments.next();
                module.clone()
            }
            "super" => {
                let mut base = module.clone();
                while segments.peek().is_some_and(|s| s == "super") {
                    segments.next();
                    base.pop();
                }
                base
            }
            first => {
                let mut child = module.clone();
                child.push(first.to_owned());
                if !self.modules.contains_key(&child) {
                    return None;
                }
                module.clone()
            }
        };
        base.extend(segments);
        Some(base)
    }

    /// The module an absolute path lands in: down the module files as far as
    /// they go, then through re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> ModPath {
        let mut module = Vec::new();
        for (i, segment) in path.iter().enumerate() {
            let mut child = module.clone();
            child.push(segment.clone());
            if self.modules.contains_key(&child) {
                module = child;
                continue;
            }
            let export = self.exports.get(&module).and_then(|e| e.get(segment));
            if let Some(target) = export.filter(|_| depth < 8) {
                let mut rest = target.clone();
                rest.extend(path[i + 1..].iter().cloned());
                return self.resolve(&rest, depth + 1);
            }
            break;
        }
        module
    }

    /// Per scope (the crate root, every folder module), the graph of its
    /// children: `from -> to -> an example place where from uses to`.
    fn scopes(&self) -> BTreeMap<ModPath, Graph> {
        let mut scopes: BTreeMap<ModPath, Graph> = BTreeMap::new();
        for (from, references) in &self.references {
            for (path, at) in references {
                let to = self.resolve(path, 0);
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                // Within one module, or between a folder module's own file and
                // what lies below it: not an edge (see the file's doc).
                if common == from.len() || common == to.len() {
                    continue;
                }
                scopes
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .entry(to[common].clone())
                    .or_insert_with(|| at.clone());
            }
        }
        scopes
    }
}

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// `lib.rs` -> `[]`, `a/mod.rs` -> `[a]`, `a/b.rs` -> `[a, b]`.
fn module_path(relative: &Path) -> ModPath {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a file as `(first line number, statement)`: comment lines and
/// inline test modules dropped, a `use` declaration joined up to its `;`.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut open_use: Option<(usize, String)> = None;
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if line.starts_with("//") {
            continue;
        }
        let line = line.split(" // ").next().unwrap_or("");
        if line == "#[cfg(test)]" {
            let next = text.lines().nth(i + 1).unwrap_or("").trim();
            let is_module = next.ends_with('{')
                && (next.starts_with("mod ")
                    || (next.starts_with("pub") && next.contains(" mod ")));
            if is_module {
                for (_, skipped) in lines.by_ref() {
                    if skipped == "}" {
                        break;
                    }
                }
                continue;
            }
        }
        if let Some((start, mut statement)) = open_use.take() {
            statement.push(' ');
            statement.push_str(line);
            if line.ends_with(';') {
                out.push((start, statement));
            } else {
                open_use = Some((start, statement));
            }
            continue;
        }
        if use_tree(&format!("{line};")).is_some() && !line.ends_with(';') {
            open_use = Some((i + 1, line.to_owned()));
        } else {
            out.push((i + 1, line.to_owned()));
        }
    }
    out
}

/// For a `use` declaration: whether it is a re-export, and its tree.
fn use_tree(statement: &str) -> Option<(bool, &str)> {
    let statement = statement.trim();
    let (public, rest) = if let Some(rest) = statement.strip_prefix("pub") {
        let rest = match rest.strip_prefix('(') {
            Some(scoped) => scoped.split_once(')')?.1,
            None => rest,
        };
        (true, rest.trim_start())
    } else {
        (false, statement)
    };
    let tree = rest.strip_prefix("use ")?.trim().strip_suffix(';')?;
    Some((public, tree.trim()))
}

/// The paths a use tree names, one per leaf: `a::{b, c::{self, d as e}}` ->
/// `a::b`, `a::c`, `a::c::d`. A glob names its module.
fn expand(tree: &str, out: &mut Vec<String>) {
    for (path, _) in leaves(tree) {
        out.push(path);
    }
}

/// The names a use tree brings into scope, in the order of [`expand`].
fn use_names(tree: &str) -> Vec<String> {
    leaves(tree).into_iter().map(|(_, name)| name).collect()
}

fn leaves(tree: &str) -> Vec<(String, String)> {
    let tree = tree.trim().trim_start_matches("::");
    let mut out = Vec::new();
    if let Some(open) = tree.find('{') {
        let prefix = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top_level(inner) {
            for (path, name) in leaves(part) {
                let joined = match (prefix.is_empty(), path.as_str()) {
                    (true, _) => path,
                    (false, "self") => prefix.to_owned(),
                    (false, _) => format!("{prefix}::{path}"),
                };
                let name = if name == "self" {
                    prefix.rsplit("::").next().unwrap_or(prefix).to_owned()
                } else {
                    name
                };
                out.push((joined, name));
            }
        }
        return out;
    }
    if tree.is_empty() {
        return out;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((path, alias)) => (path.trim(), Some(alias.trim())),
        None => (tree, None),
    };
    if let Some(module) = path.strip_suffix("::*") {
        out.push((module.to_owned(), "*".to_owned()));
    } else {
        let name = alias.unwrap_or_else(|| path.rsplit("::").next().unwrap_or(path));
        out.push((path.to_owned(), name.to_owned()));
    }
    out
}

/// `a, b::{c, d}, e` -> `a`, `b::{c, d}`, `e`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Every `crate::…`, `super::…` and `self::…` path in a line of code.
fn inline_paths(line: &str) -> Vec<String> {
    let line = line.split(" // ").next().unwrap_or("");
    let bytes = line.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| rest.starts_with(p.as_bytes()));
        if starts && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let mut end = i;
            while end < bytes.len()
                && (is_ident(bytes[end])
                    || (bytes[end] == b':' && bytes.get(end + 1) == Some(&b':')))
            {
                end += if bytes[end] == b':' { 2 } else { 1 };
            }
            out.push(line[i..end].trim_end_matches("::").to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// A cycle in `graph` as `[a, b, …, a]`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|n| n.keys()) {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    let nodes: BTreeSet<&String> = graph.keys().collect();
    for node in nodes {
        if marks.contains_key(node.as_str()) {
            continue;
        }
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// Every module on some circle through `node`: those it reaches that reach it.
fn circle_members(graph: &Graph, node: &str) -> BTreeSet<String> {
    fn reach(node: &str, next: &dyn Fn(&str) -> Vec<String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![node.to_owned()];
        while let Some(n) = todo.pop() {
            for m in next(&n) {
                if seen.insert(m.clone()) {
                    todo.push(m);
                }
            }
        }
        seen
    }
    let forward = reach(node, &|n| {
        graph
            .get(n)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    });
    let backward = reach(node, &|n| {
        graph
            .iter()
            .filter(|(_, edges)| edges.contains_key(n))
            .map(|(from, _)| from.clone())
            .collect()
    });
    forward.intersection(&backward).cloned().collect()
}
