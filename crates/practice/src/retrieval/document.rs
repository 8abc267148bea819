//! Documents from uploaded files.

use serde_json::Value;

/// The format of an uploaded knowledge file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    /// Plain text: the whole file is one document.
    Text,
    /// Markdown: the whole file is one document, kept as written (the markup
    /// is useful context for a chat model and harmless to the terms).
    Markdown,
    /// JSON Lines: one document per non-blank line, an object with a string
    /// `text` and an optional string `title`.
    Jsonl,
}

impl DocumentFormat {
    /// The format for a file name's extension, case-insensitively: `.txt`/`.text`,
    /// `.md`/`.markdown`, `.jsonl`/`.ndjson`; `None` for anything else.
    pub fn from_file_name(name: &str) -> Option<Self> {
        // Only the last path component, so "v1.2/readme" has no extension.
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let (stem, ext) = base.rsplit_once('.')?;
        if stem.is_empty() {
            // A dot file such as ".md" has no extension.
            return None;
        }
        match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(Self::Text),
            "md" | "markdown" => Some(Self::Markdown),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }

    /// The stable name stored and shown for the format: `"text"`, `"markdown"`
    /// or `"jsonl"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Jsonl => "jsonl",
        }
    }
}

/// One document read from an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDocument {
    /// The file name for a text or markdown file; for a JSONL line, its `title`,
    /// or `"<file>#<line>"` when it has none.
    pub title: String,
    /// The document text, as written in the file.
    pub text: String,
}

/// Why an uploaded file could not be read as documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The bytes are not UTF-8.
    #[error("the file is not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte in the file as uploaded (counting a
        /// byte-order mark, if any).
        offset: usize,
    },
    /// A JSONL line is not an object with a non-blank string `text`.
    #[error("line {line}: {message}")]
    BadLine {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file holds no text (only whitespace, or no JSONL lines).
    #[error("the document is empty")]
    Empty,
    /// No format was given and the file name's extension is not known.
    #[error("unknown document format for {0:?}: expected a .txt, .md or .jsonl file")]
    UnknownFormat(String),
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads the documents in an uploaded file. The format is `format` if given,
/// otherwise chosen from `file_name`'s extension.
///
/// The bytes must be UTF-8; a leading byte-order mark is dropped. A text or
/// markdown file is one document titled with the file name; a JSONL file gives
/// one document per non-blank line. Whitespace-only documents are rejected.
pub fn parse_document(
    file_name: &str,
    format: Option<DocumentFormat>,
    bytes: &[u8],
) -> Result<Vec<ParsedDocument>, DocumentError> {
    let format = format
        .or_else(|| DocumentFormat::from_file_name(file_name))
        .ok_or_else(|| DocumentError::UnknownFormat(file_name.to_string()))?;
    let bom = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let text = std::str::from_utf8(&bytes[bom..]).map_err(|e| DocumentError::InvalidUtf8 {
        offset: bom + e.valid_up_to(),
    })?;
    match format {
        DocumentFormat::Text | DocumentFormat::Markdown => {
            if text.trim().is_empty() {
                return Err(DocumentError::Empty);
            }
            Ok(vec![ParsedDocument {
                title: file_name.to_string(),
                text: text.to_string(),
            }])
        }
        DocumentFormat::Jsonl => {
            let documents = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| parse_line(file_name, i + 1, line))
                .collect::<Result<Vec<_>, _>>()?;
            if documents.is_empty() {
                return Err(DocumentError::Empty);
            }
            Ok(documents)
        }
    }
}

/// One non-blank JSONL line, numbered from 1.
fn parse_line(file_name: &str, line: usize, json: &str) -> Result<ParsedDocument, DocumentError> {
    let bad = |message: String| DocumentError::BadLine { line, message };
    let value: Value = serde_json::from_str(json).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(bad(format!(
            "expected a JSON object, found {}",
            kind(&value)
        )));
    };
    let text = match object.get("text") {
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(bad(format!(
                "\"text\" must be a string, found {}",
                kind(other)
            )));
        }
        None => return Err(bad("missing string field \"text\"".to_string())),
    };
    if text.trim().is_empty() {
        return Err(bad("\"text\" is empty".to_string()));
    }
    // A null or blank title is as good as none; any other non-string is a
    // mistake worth reporting rather than silently renaming the document.
    let title = match object.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() => title.clone(),
        None | Some(Value::Null | Value::String(_)) => format!("{file_name}#{line}"),
        Some(other) => {
            return Err(bad(format!(
                "\"title\" must be a string, found {}",
                kind(other)
            )));
        }
    };
    Ok(ParsedDocument {
        title,
        text: text.clone(),
    })
}

/// A JSON value's kind, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: &str, text: &str) -> ParsedDocument {
        ParsedDocument {
            title: title.to_string(),
            text: text.to_string(),
        }
    }

    #[test]
    fn format_from_file_name() {
        use DocumentFormat::*;
        assert_eq!(DocumentFormat::from_file_name("notes.txt"), Some(Text));
        assert_eq!(DocumentFormat::from_file_name("README.MD"), Some(Markdown));
        assert_eq!(
            DocumentFormat::from_file_name("a.b/guide.Markdown"),
            Some(Markdown)
        );
        assert_eq!(DocumentFormat::from_file_name("data.JsonL"), Some(Jsonl));
        assert_eq!(
            DocumentFormat::from_file_name("C:\\docs\\x.ndjson"),
            Some(Jsonl)
        );
        assert_eq!(DocumentFormat::from_file_name("report.pdf"), None);
        assert_eq!(DocumentFormat::from_file_name("v1.2/readme"), None);
        assert_eq!(DocumentFormat::from_file_name(".md"), None);
        assert_eq!(DocumentFormat::from_file_name("noext"), None);
        assert_eq!(
            [Text, Markdown, Jsonl].map(DocumentFormat::as_str),
            ["text", "markdown", "jsonl"]
        );
    }

    #[test]
    fn text_and_markdown_are_one_document_kept_as_is() {
        let md = "# 제목\n\n- 항목 *하나*\n";
        assert_eq!(
            parse_document("a.md", None, md.as_bytes()),
            Ok(vec![doc("a.md", md)])
        );
        assert_eq!(
            parse_document("a.txt", None, b"hello\r\n"),
            Ok(vec![doc("a.txt", "hello\r\n")])
        );
    }

    #[test]
    fn explicit_format_overrides_the_extension() {
        let got = parse_document(
            "upload.bin",
            Some(DocumentFormat::Jsonl),
            br#"{"text":"x"}"#,
        );
        assert_eq!(got, Ok(vec![doc("upload.bin#1", "x")]));
        let got = parse_document("data.jsonl", Some(DocumentFormat::Text), br#"{"text":"x"}"#);
        assert_eq!(got, Ok(vec![doc("data.jsonl", r#"{"text":"x"}"#)]));
    }

    #[test]
    fn unknown_format() {
        let err = parse_document("report.pdf", None, b"x").unwrap_err();
        assert_eq!(err, DocumentError::UnknownFormat("report.pdf".to_string()));
        assert!(err.to_string().contains("report.pdf"));
    }

    #[test]
    fn bom_is_stripped() {
        let got = parse_document("a.txt", None, b"\xEF\xBB\xBFhello").unwrap();
        assert_eq!(got, [doc("a.txt", "hello")]);
        let got = parse_document("a.jsonl", None, b"\xEF\xBB\xBF{\"text\":\"t\"}\n").unwrap();
        assert_eq!(got, [doc("a.jsonl#1", "t")]);
    }

    #[test]
    fn invalid_utf8_reports_the_offset_in_the_file() {
        let err = parse_document("a.txt", None, b"abc\xFFdef").unwrap_err();
        assert_eq!(err, DocumentError::InvalidUtf8 { offset: 3 });
        assert!(err.to_string().contains("offset 3"));
        // Counted in the uploaded bytes, BOM included.
        let err = parse_document("a.txt", None, b"\xEF\xBB\xBF\xEA\xB0\x80\xEA").unwrap_err();
        assert_eq!(err, DocumentError::InvalidUtf8 { offset: 6 });
        // A truncated Hangul syllable (3 bytes, 2 present) at the start.
        let err = parse_document("a.jsonl", None, b"\xEA\xB0").unwrap_err();
        assert_eq!(err, DocumentError::InvalidUtf8 { offset: 0 });
    }

    #[test]
    fn empty_documents_are_rejected() {
        assert_eq!(
            parse_document("a.txt", None, b""),
            Err(DocumentError::Empty)
        );
        assert_eq!(
            parse_document("a.md", None, b" \n\t\r\n"),
            Err(DocumentError::Empty)
        );
        assert_eq!(
            parse_document("a.jsonl", None, b"\n  \n"),
            Err(DocumentError::Empty)
        );
        assert_eq!(
            parse_document("a.txt", None, b"\xEF\xBB\xBF"),
            Err(DocumentError::Empty)
        );
    }

    #[test]
    fn jsonl_documents_titles_and_blank_lines() {
        let file = "{\"text\":\"첫 번째\",\"title\":\"하나\",\"id\":7}\r\n\
                    \n\
                    {\"text\":\"두 번째\"}\n\
                    {\"text\":\"세 번째\",\"title\":null}\n\
                    {\"text\":\"네 번째\",\"title\":\"  \"}";
        assert_eq!(
            parse_document("kb.jsonl", None, file.as_bytes()),
            Ok(vec![
                doc("하나", "첫 번째"),
                doc("kb.jsonl#3", "두 번째"),
                doc("kb.jsonl#4", "세 번째"),
                doc("kb.jsonl#5", "네 번째"),
            ])
        );
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("{\"text\":\"ok\"}\n{not json}", 2, "invalid JSON"),
            ("\n\n[1,2]", 3, "expected a JSON object, found an array"),
            ("\"text\"", 1, "found a string"),
            ("{\"title\":\"t\"}", 1, "missing string field \"text\""),
            (
                "{\"text\":42}",
                1,
                "\"text\" must be a string, found a number",
            ),
            ("{\"text\":null}", 1, "found null"),
            ("{\"text\":\" \\n \"}", 1, "\"text\" is empty"),
            (
                "{\"text\":\"x\",\"title\":3}",
                1,
                "\"title\" must be a string",
            ),
            (
                "{\"text\":\"ok\"}\n{\"text\":\"a\"} trailing",
                2,
                "invalid JSON",
            ),
        ];
        for &(file, line, needle) in cases {
            match parse_document("f.jsonl", None, file.as_bytes()) {
                Err(DocumentError::BadLine { line: got, message }) => {
                    assert_eq!(got, line, "{file:?}: {message}");
                    assert!(
                        message.contains(needle),
                        "{file:?}: {message:?} lacks {needle:?}"
                    );
                    let shown = DocumentError::BadLine { line: got, message }.to_string();
                    assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
                }
                other => panic!("{file:?}: expected BadLine, got {other:?}"),
            }
        }
    }
}
