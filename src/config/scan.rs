//! The pre-scan: one flat, non-recursive pass over a JSON5 text, run before
//! the `json5` crate's recursive parser sees it.
//!
//! Owns: where tokens begin and end (strings, comments, punctuation and bare
//! words, per the JSON5 spec sections "Strings", "Comments" and "White
//! Space"), line and column counting, the nesting cap, where every value and
//! every key of a document begins, and what encloses a given point of the
//! text (for wording syntax errors).
//!
//! The parser recurses once per level of `[`/`{`, so a hostile file of a
//! hundred thousand `[` would overflow the stack inside it. This pass keeps
//! its open containers in a `Vec` and refuses the text before the parser is
//! called. It respects strings and comments, so brackets written inside them
//! never count. Where it disagrees with the parser, the text is invalid at or
//! before that point, and the parser stops there: the count here is never
//! lower than the depth the parser reaches.
//!
//! The parser keeps no positions, so this pass also records where each value
//! and each key starts, in document order. For a document the parser
//! accepted, the n-th value it builds is the n-th value recorded here.
//!
//! Lines are counted as ECMAScript and the `json5` crate count them: LF, CR,
//! CRLF (once), U+2028 and U+2029 each end a line. Columns count Unicode
//! scalar values, so a tab or a multi-byte character is one column.

use json5::char::{is_json5_line_terminator, is_json5_whitespace};

use super::ConfigError;

/// Deepest nesting of objects and arrays accepted. A config needs four
/// levels; the cap keeps a hostile file from exhausting the parser's stack.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column.
pub type Pos = (usize, usize);

/// Walks a text one character at a time, keeping the line and column.
#[derive(Clone)]
struct Cursor<'a> {
    text: &'a str,
    /// Byte offset of the next character; always on a char boundary.
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            text,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.offset..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn here(&self) -> Pos {
        (self.line, self.column)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        // In CRLF the CR is an ordinary column and the LF ends the line.
        if is_json5_line_terminator(c) && !(c == '\r' && self.peek() == Some('\n')) {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }
}

/// The line and column of byte `offset` (clamped to the text).
pub fn position_of(text: &str, offset: usize) -> Pos {
    let mut cur = Cursor::new(text);
    while cur.offset < offset && cur.bump().is_some() {}
    cur.here()
}

/// The byte offset of 1-based `line` and `column`, or the end of the text
/// when the text has no such place.
pub fn offset_of(text: &str, (line, column): Pos) -> usize {
    let mut cur = Cursor::new(text);
    while (cur.line, cur.column) < (line, column) && cur.bump().is_some() {}
    cur.offset
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `{` or `[`.
    Open(char),
    /// `}` or `]`.
    Close(char),
    Colon,
    Comma,
    /// A quoted string, from its opening quote to its closing quote (or to
    /// where it was cut off).
    String,
    /// Anything else up to white space, punctuation, a quote or a `/`:
    /// numbers, literals, unquoted keys, and stray characters.
    Word,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte range in the text.
    pub start: usize,
    pub end: usize,
    pub pos: Pos,
}

impl Token {
    pub fn text<'a>(&self, text: &'a str) -> &'a str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

/// A string or block comment that never ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unclosed {
    /// A string cut off by the end of its line or of the file.
    String {
        quote: char,
        pos: Pos,
    },
    Comment {
        pos: Pos,
    },
}

/// The tokens of a text, skipping white space and comments.
pub struct Lexer<'a> {
    cur: Cursor<'a>,
    /// The first string or comment that never ends.
    pub unclosed: Option<Unclosed>,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Lexer {
            cur: Cursor::new(text),
            unclosed: None,
        }
    }

    fn note(&mut self, u: Unclosed) {
        self.unclosed.get_or_insert(u);
    }

    /// Skip white space and comments; false at the end of the text.
    fn skip_trivia(&mut self) -> bool {
        loop {
            match self.cur.peek() {
                None => return false,
                Some(c) if is_json5_whitespace(c) => {
                    self.cur.bump();
                }
                Some('/') if self.cur.peek_second() == Some('/') => {
                    while self
                        .cur
                        .peek()
                        .is_some_and(|c| !is_json5_line_terminator(c))
                    {
                        self.cur.bump();
                    }
                }
                Some('/') if self.cur.peek_second() == Some('*') => {
                    let pos = self.cur.here();
                    self.cur.bump();
                    self.cur.bump();
                    loop {
                        match self.cur.bump() {
                            None => {
                                self.note(Unclosed::Comment { pos });
                                return false;
                            }
                            Some('*') if self.cur.peek() == Some('/') => {
                                self.cur.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                Some(_) => return true,
            }
        }
    }

    fn string(&mut self, quote: char) {
        let pos = self.cur.here();
        self.cur.bump();
        loop {
            match self.cur.peek() {
                None => {
                    self.note(Unclosed::String { quote, pos });
                    return;
                }
                // A raw LF or CR ends the string as an error, as in the
                // parser; U+2028 and U+2029 are allowed inside strings.
                Some('\n' | '\r') => {
                    self.note(Unclosed::String { quote, pos });
                    return;
                }
                Some('\\') => {
                    self.cur.bump();
                    // An escaped CRLF is one line continuation.
                    if self.cur.bump() == Some('\r') && self.cur.peek() == Some('\n') {
                        self.cur.bump();
                    }
                }
                Some(c) => {
                    self.cur.bump();
                    if c == quote {
                        return;
                    }
                }
            }
        }
    }
}

fn ends_word(c: char) -> bool {
    is_json5_whitespace(c) || matches!(c, '{' | '}' | '[' | ']' | ':' | ',' | '"' | '\'' | '/')
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if !self.skip_trivia() {
            return None;
        }
        let start = self.cur.offset;
        let pos = self.cur.here();
        let c = self.cur.peek()?;
        let kind = match c {
            '{' | '[' => TokenKind::Open(c),
            '}' | ']' => TokenKind::Close(c),
            ':' => TokenKind::Colon,
            ',' => TokenKind::Comma,
            '"' | '\'' => {
                self.string(c);
                return Some(Token {
                    kind: TokenKind::String,
                    start,
                    end: self.cur.offset,
                    pos,
                });
            }
            _ => {
                // A lone '/' is a word of its own, so that a word always
                // advances.
                self.cur.bump();
                while self.cur.peek().is_some_and(|c| !ends_word(c)) {
                    self.cur.bump();
                }
                return Some(Token {
                    kind: TokenKind::Word,
                    start,
                    end: self.cur.offset,
                    pos,
                });
            }
        };
        self.cur.bump();
        Some(Token {
            kind,
            start,
            end: self.cur.offset,
            pos,
        })
    }
}

/// Where the values and keys of a document begin, in document order.
#[derive(Debug, Default)]
pub struct Places {
    pub values: Vec<Pos>,
    pub keys: Vec<Pos>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    Key,
    Colon,
    Separator,
}

/// Check the nesting of `text` and record where its values and keys begin.
/// The only error is nesting deeper than `MAX_DEPTH`; syntax is the
/// parser's business.
pub fn prescan(text: &str) -> Result<Places, ConfigError> {
    let mut places = Places::default();
    let mut open: Vec<char> = Vec::new();
    let mut expect = Expect::Value;
    for t in Lexer::new(text) {
        match t.kind {
            TokenKind::Open(c) => {
                if open.len() >= MAX_DEPTH {
                    let what = if c == '{' { "object" } else { "array" };
                    return Err(ConfigError {
                        line: t.pos.0,
                        column: t.pos.1,
                        path: String::new(),
                        message: format!(
                            "this {what} is nested too deeply: at most {MAX_DEPTH} levels of objects and arrays are allowed"
                        ),
                    });
                }
                if expect == Expect::Value {
                    places.values.push(t.pos);
                }
                open.push(c);
                expect = if c == '{' { Expect::Key } else { Expect::Value };
            }
            TokenKind::Close(_) => {
                open.pop();
                expect = Expect::Separator;
            }
            TokenKind::Colon => expect = Expect::Value,
            TokenKind::Comma => {
                expect = if open.last() == Some(&'{') {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            TokenKind::String | TokenKind::Word => match expect {
                Expect::Value => {
                    places.values.push(t.pos);
                    expect = Expect::Separator;
                }
                Expect::Key => {
                    places.keys.push(t.pos);
                    expect = Expect::Colon;
                }
                Expect::Colon | Expect::Separator => {}
            },
        }
    }
    Ok(places)
}

/// What surrounds byte `offset` of a text.
#[derive(Debug, Default)]
pub struct Context {
    /// The innermost container open at `offset`: `{` or `[`, and where.
    pub enclosing: Option<(char, Pos)>,
    /// The token that contains `offset`.
    pub token: Option<Token>,
    /// The two tokens before it, nearest last.
    pub before: [Option<Token>; 2],
}

pub fn context_at(text: &str, offset: usize) -> Context {
    let mut cx = Context::default();
    let mut open: Vec<(char, Pos)> = Vec::new();
    for t in Lexer::new(text) {
        if t.start > offset {
            break;
        }
        if offset < t.end {
            cx.token = Some(t);
            break;
        }
        match t.kind {
            TokenKind::Open(c) => open.push((c, t.pos)),
            TokenKind::Close(_) => {
                open.pop();
            }
            _ => {}
        }
        cx.before = [cx.before[1], Some(t)];
    }
    cx.enclosing = open.last().copied();
    cx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        Lexer::new(text).map(|t| t.kind).collect()
    }

    #[test]
    fn brackets_in_strings_and_comments_are_not_tokens() {
        use TokenKind::*;
        assert_eq!(
            kinds("{ a: '[{', \"]\\\"}\" /* [[ */ // {{\n }"),
            [Open('{'), Word, Colon, String, Comma, String, Close('}')]
        );
        assert_eq!(
            kinds("[1 2e3,-Infinity]"),
            [Open('['), Word, Word, Comma, Word, Close(']')]
        );
    }

    #[test]
    fn unclosed_strings_and_comments_are_noted_at_their_start() {
        let mut lx = Lexer::new("[ 'a',\n  \"open\n ]");
        let n = lx.by_ref().count();
        assert_eq!(
            n, 5,
            "the cut string is a token and the ']' after it one too"
        );
        assert_eq!(
            lx.unclosed,
            Some(Unclosed::String {
                quote: '"',
                pos: (2, 3)
            })
        );
        let mut lx = Lexer::new("[1, /* never");
        lx.by_ref().for_each(drop);
        assert_eq!(lx.unclosed, Some(Unclosed::Comment { pos: (1, 5) }));
    }

    #[test]
    fn lines_count_crlf_once_and_columns_count_characters() {
        let text = "{\r\n a: 1,\r b: 'é', c: 2 }";
        let p = prescan(text).unwrap_or_default();
        assert_eq!(p.keys, [(2, 2), (3, 2), (3, 10)]);
        assert_eq!(p.values, [(1, 1), (2, 5), (3, 5), (3, 13)]);
        assert_eq!(position_of(text, text.len()), (3, 16));
        assert_eq!(offset_of(text, (3, 10)), text.find("c:").unwrap_or(0));
    }

    #[test]
    fn places_follow_document_order() {
        let p = prescan("{ a: [1, {b: 'x'}, ], 'c d': null }").unwrap_or_default();
        assert_eq!(p.keys, [(1, 3), (1, 11), (1, 23)]);
        assert_eq!(
            p.values,
            [(1, 1), (1, 6), (1, 7), (1, 10), (1, 14), (1, 30)]
        );
    }

    #[test]
    fn nesting_is_capped_before_any_recursion() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(prescan(&ok).is_ok());
        let e = match prescan(&"[".repeat(100_000)) {
            Ok(_) => panic!("100,000 nested arrays accepted"),
            Err(e) => e,
        };
        assert_eq!((e.line, e.column), (1, MAX_DEPTH + 1));
        assert!(e.message.contains("nested too deeply"), "{e}");
        // Brackets inside strings and comments do not count.
        let quoted = format!("['{}', /* {} */ 1]", "[".repeat(1000), "{".repeat(1000));
        assert!(prescan(&quoted).is_ok());
    }

    #[test]
    fn context_names_the_enclosing_container_and_the_tokens_before() {
        let text = "{\n  a: [1 x]\n}";
        let at = text.find('x').unwrap_or(0);
        let cx = context_at(text, at);
        assert_eq!(cx.enclosing, Some(('[', (2, 6))));
        assert_eq!(cx.token.map(|t| t.text(text)), Some("x"));
        assert_eq!(cx.before[1].map(|t| t.text(text)), Some("1"));
        assert_eq!(context_at(text, text.len()).enclosing, None);
    }
}
