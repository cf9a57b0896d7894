//! The text side of message search, shared by both stores so that SQLite (FTS5) and
//! PostgreSQL (`tsvector`) index and match the same words.
//!
//! - [`index_text`]: what a message's content is indexed as: its words, each folded
//!   (Unicode compatibility decomposition, NFKD, with combining marks removed, then
//!   lower-cased: `Café` → `cafe`, `ﬁle` → `file`), separated by single spaces. A word is
//!   a run of letters and digits; each Han, Hiragana or Katakana character is a word of
//!   its own, since those scripts put no spaces between words (so a query of several such
//!   characters is a phrase of single characters and finds them anywhere). Words are cut
//!   to [`MAX_WORD_CHARS`].
//! - [`SearchQuery::parse`]: what a user typed, as terms that must all match: a bare word
//!   matches any word it begins (`deploy` finds `deployment`); a `"quoted phrase"` matches
//!   those words in that order, each whole.
//! - [`snippet`]: the part of a message's content around the first match, as segments
//!   with the matched words marked, for clients to highlight without parsing HTML.
//!
//! The store backends get the folded text from [`index_text`] and turn a query into their
//! own syntax with [`SearchQuery::fts5_match`] and [`SearchQuery::pg_tsquery`]. The
//! folding is done here rather than by the database so that both backends agree (FTS5's
//! `unicode61` and PostgreSQL's `simple` configuration differ on diacritics and on where
//! words end).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization as _;

/// The version of the folding above. Each store records the version its index was built
/// with and rebuilds the index from the messages when it is older; raise it whenever
/// [`index_text`] would index a message differently.
pub const INDEX_VERSION: i64 = 1;

/// Longest word kept, in characters (longer words are cut, in the index and in queries
/// alike).
pub const MAX_WORD_CHARS: usize = 64;

/// Most terms in one query; more are refused.
pub const MAX_TERMS: usize = 16;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// Whether `c` is written without spaces between words (Han ideographs, Hiragana and
/// Katakana): each such character is indexed as a word of its own.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // Hiragana, Katakana
        | 0x31F0..=0x31FF      // Katakana phonetic extensions
        | 0x3400..=0x4DBF      // CJK unified ideographs, extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0xFF66..=0xFF9F      // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK extensions B and later, compatibility supplement
}

/// Whether `c` belongs in a word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// The words of `text`, each as its byte range in `text` and its folded form (never
/// empty).
pub fn words(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let push = |out: &mut Vec<(std::ops::Range<usize>, String)>, range| {
        let folded = fold(&text[std::ops::Range::clone(&range)]);
        if !folded.is_empty() {
            out.push((range, folded));
        }
    };
    for (i, c) in text.char_indices() {
        if is_unspaced(c) {
            if let Some(s) = start.take() {
                push(&mut out, s..i);
            }
            push(&mut out, i..i + c.len_utf8());
        } else if is_word_char(c) {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            push(&mut out, s..i);
        }
    }
    if let Some(s) = start {
        push(&mut out, s..text.len());
    }
    out
}

/// `word` folded: NFKD, combining marks dropped, lower-cased, only letters and digits
/// kept, cut to [`MAX_WORD_CHARS`].
fn fold(word: &str) -> String {
    word.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .take(MAX_WORD_CHARS)
        .collect()
}

/// Whether a message of this type is indexed: calls (their log entries) are not.
pub fn is_indexed(message_type: palaver_protocol::MessageType) -> bool {
    message_type != palaver_protocol::MessageType::Call
}

/// What a message's content is indexed as: its folded words separated by single spaces
/// (empty if it has none).
pub fn index_text(content: &str) -> String {
    let words = words(content);
    let mut out = String::with_capacity(content.len());
    for (i, (_, w)) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// One term of a query; a message matches a query when it matches every term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A bare word: matches any word that begins with it.
    Prefix(String),
    /// A quoted phrase: these whole words, adjacent and in this order (one word: that
    /// word exactly).
    Phrase(Vec<String>),
}

/// A parsed search query: terms that must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
}

/// Why a query was refused (the `detail` of a `validation_failed` on `q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Longer than [`MAX_QUERY_CHARS`].
    TooLong,
    /// No word in it (only spaces, punctuation or empty quotes).
    NoWords,
    /// More than [`MAX_TERMS`] terms.
    TooManyTerms,
}

impl QueryError {
    /// A sentence for the client.
    pub fn message(self) -> String {
        match self {
            QueryError::TooLong => format!("q must be at most {MAX_QUERY_CHARS} characters"),
            QueryError::NoWords => "q must contain at least one word".to_owned(),
            QueryError::TooManyTerms => format!("q may have at most {MAX_TERMS} terms"),
        }
    }
}

impl SearchQuery {
    /// Parses what a user typed: words outside double quotes are [`Term::Prefix`]es,
    /// each quoted part a [`Term::Phrase`] (an unclosed quote runs to the end).
    ///
    /// # Errors
    /// [`QueryError`]: too long, no words, or too many terms.
    pub fn parse(raw: &str) -> Result<SearchQuery, QueryError> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut terms = Vec::new();
        for (i, part) in raw.split('"').enumerate() {
            if i % 2 == 1 {
                let phrase: Vec<String> = words(part).into_iter().map(|(_, w)| w).collect();
                if !phrase.is_empty() {
                    terms.push(Term::Phrase(phrase));
                }
                continue;
            }
            // Outside quotes, a run of adjacent unspaced characters (東京) is a phrase.
            let mut run: Vec<String> = Vec::new();
            let mut run_end = None;
            for (range, w) in words(part) {
                let unspaced = part[range.clone()].chars().all(is_unspaced);
                if unspaced && run_end == Some(range.start) {
                    run.push(w);
                } else {
                    flush_run(&mut terms, std::mem::take(&mut run));
                    if unspaced {
                        run.push(w);
                    } else {
                        terms.push(Term::Prefix(w));
                    }
                }
                run_end = unspaced.then_some(range.end);
            }
            flush_run(&mut terms, run);
        }
        if terms.is_empty() {
            return Err(QueryError::NoWords);
        }
        if terms.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms);
        }
        Ok(SearchQuery { terms })
    }

    /// The query in FTS5's syntax, for `message_search MATCH ?`: `"word"*` per prefix,
    /// `"w1 w2"` per phrase, space-separated (AND). Words hold only letters and digits,
    /// so the quoting needs no escapes.
    pub fn fts5_match(&self) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t {
                Term::Prefix(w) => format!("\"{w}\"*"),
                Term::Phrase(ws) => format!("\"{}\"", ws.join(" ")),
            })
            .collect();
        parts.join(" ")
    }

    /// The query in PostgreSQL's `to_tsquery('simple', …)` syntax: `word:*` per prefix,
    /// `(w1 <-> w2)` per phrase, joined by `&`.
    pub fn pg_tsquery(&self) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t {
                Term::Prefix(w) => format!("{w}:*"),
                Term::Phrase(ws) => format!("({})", ws.join(" <-> ")),
            })
            .collect();
        parts.join(" & ")
    }

    /// Whether the folded word `w` is one that a term of this query matches (a prefix
    /// term's extension, or a word of a phrase), for highlighting.
    fn highlights(&self, w: &str) -> bool {
        self.terms.iter().any(|t| match t {
            Term::Prefix(p) => w.starts_with(p.as_str()),
            Term::Phrase(ws) => ws.iter().any(|x| x == w),
        })
    }
}

/// Adds a run of unspaced characters to `terms`: one as a prefix, several as a phrase.
fn flush_run(terms: &mut Vec<Term>, mut run: Vec<String>) {
    match run.len() {
        0 => {}
        1 => terms.push(Term::Prefix(run.remove(0))),
        _ => terms.push(Term::Phrase(run)),
    }
}

pub use palaver_protocol::rest::SnippetPart;

/// Words of context kept before the first match.
const CONTEXT_BEFORE: usize = 6;
/// Words in a snippet at most.
const SNIPPET_WORDS: usize = 30;

/// The part of `content` around its first word that `query` matches (from up to 6 words
/// before it, 30 words in all), split into parts with the matched words marked; `…`
/// shows where text was cut. Without a matching word, the start of the content.
pub fn snippet(content: &str, query: &SearchQuery) -> Vec<SnippetPart> {
    let words = words(content);
    let first = words
        .iter()
        .position(|(_, w)| query.highlights(w))
        .unwrap_or(0);
    let from = first.saturating_sub(CONTEXT_BEFORE);
    let to = (from + SNIPPET_WORDS).min(words.len());
    let (start, end) = if words.is_empty() {
        (0, content.len())
    } else {
        let start = if from == 0 { 0 } else { words[from].0.start };
        let end = if to == words.len() {
            content.len()
        } else {
            words[to - 1].0.end
        };
        (start, end)
    };
    let mut parts: Vec<SnippetPart> = Vec::new();
    let mut push = |text: &str, highlight: bool| {
        if text.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some(last) if last.highlight == highlight => last.text.push_str(text),
            _ => parts.push(SnippetPart {
                text: text.to_owned(),
                highlight,
            }),
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for (range, w) in &words[from..to] {
        if query.highlights(w) {
            push(&content[at..range.start], false);
            push(&content[range.clone()], true);
            at = range.end;
        }
    }
    push(&content[at..end], false);
    if end < content.len() {
        push("…", false);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_split() {
        assert_eq!(
            index_text("Café au LAIT, s'il-vous-plaît!"),
            "cafe au lait s il vous plait"
        );
        assert_eq!(index_text("ﬁle №5 Ⅻ"), "file 5 xii");
        assert_eq!(index_text("東京タワーへ行く"), "東 京 タ ワ ー へ 行 く");
        assert_eq!(index_text("..."), "");
        assert_eq!(index_text("naïve résumé"), "naive resume");
        let long = "a".repeat(200);
        assert_eq!(index_text(&long).len(), MAX_WORD_CHARS);
    }

    #[test]
    fn queries_become_backend_syntax() {
        let q = SearchQuery::parse("Deploy \"the Release\" ünïcode").unwrap();
        assert_eq!(
            q.terms,
            vec![
                Term::Prefix("deploy".into()),
                Term::Phrase(vec!["the".into(), "release".into()]),
                Term::Prefix("unicode".into()),
            ]
        );
        assert_eq!(q.fts5_match(), "\"deploy\"* \"the release\" \"unicode\"*");
        assert_eq!(q.pg_tsquery(), "deploy:* & (the <-> release) & unicode:*");
        // Operators and quotes of either syntax are only separators here.
        let q = SearchQuery::parse("a' OR 1=1 -- :* & | ! <-> NEAR(x y) \"").unwrap();
        assert_eq!(
            q.fts5_match(),
            "\"a\"* \"or\"* \"1\"* \"1\"* \"near\"* \"x\"* \"y\"*"
        );
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(SearchQuery::parse("  ?! \"\" "), Err(QueryError::NoWords));
        assert_eq!(SearchQuery::parse(""), Err(QueryError::NoWords));
        assert_eq!(
            SearchQuery::parse(&"x".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong)
        );
        assert_eq!(
            SearchQuery::parse(&"w ".repeat(MAX_TERMS + 1)),
            Err(QueryError::TooManyTerms)
        );
    }

    #[test]
    fn snippets_mark_matches_and_cut() {
        let q = SearchQuery::parse("deploy").unwrap();
        let parts = snippet("We **Deployed** it; deployment done.", &q);
        assert_eq!(
            parts,
            vec![
                SnippetPart {
                    text: "We **".into(),
                    highlight: false
                },
                SnippetPart {
                    text: "Deployed".into(),
                    highlight: true
                },
                SnippetPart {
                    text: "** it; ".into(),
                    highlight: false
                },
                SnippetPart {
                    text: "deployment".into(),
                    highlight: true
                },
                SnippetPart {
                    text: " done.".into(),
                    highlight: false
                },
            ]
        );
        let long: String = (0..100).map(|i| format!("w{i} ")).collect::<String>() + "target end";
        let parts = snippet(&long, &SearchQuery::parse("target").unwrap());
        assert!(parts[0].text.starts_with("…w94 "), "{parts:?}");
        assert_eq!(
            parts[1],
            SnippetPart {
                text: "target".into(),
                highlight: true
            }
        );
        assert_eq!(parts.last().unwrap().text, " end");
        let parts = snippet(&long, &SearchQuery::parse("w1").unwrap());
        assert!(parts.last().unwrap().text.ends_with("w29…"), "{parts:?}");
        // Multi-byte text is cut on character boundaries.
        let q = SearchQuery::parse("テキ").unwrap();
        assert_eq!(q.terms, vec![Term::Phrase(vec!["テ".into(), "キ".into()])]);
        let parts = snippet("日本語のテキスト", &q);
        let text: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(text, "日本語のテキスト");
    }
}
