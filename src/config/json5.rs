//! A JSON5 reader that remembers where every value came from.
//!
//! Owns: the spanned value tree (`Value`, `Kind`, `Number`, `Member`) and
//! the parser from text to that tree. Syntax errors carry the 1-based line
//! and column of the offending character; duplicate keys are reported with
//! both lines. It knows nothing about MCR's schema; `schema` walks the tree.
//!
//! Written here rather than taken from a crate because the schema walk
//! needs the position of every key and value to point operators at the
//! exact spot, which serde-based readers do not keep.
//!
//! The input comes from users, so the reader must never panic, never
//! recurse without bound (nesting is capped at `MAX_DEPTH`) and stay
//! linear in the input size (duplicate keys are found with a hash map, not
//! by rescanning the object).
//!
//! Lines are counted the way editors count them: LF, CRLF and a lone CR
//! each end a line. U+2028/U+2029 end `//` comments and continue strings as
//! the spec says, but do not advance the line number, because editors do
//! not show them as breaks. Columns count Unicode scalar values, so a tab
//! or a multi-byte character is one column.

use std::collections::HashMap;

use super::ConfigError;

/// Deepest nesting of objects and arrays accepted. A config needs four
/// levels; the cap exists so that a hostile file cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// A value and the position of its first character.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: Kind,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    /// Members in file order. Keys are unique: a repeated key is reported
    /// by the reader and only its first occurrence is kept.
    Object(Vec<Member>),
}

/// A number as written. Integers are kept exact so that a port such as
/// `65536` is reported as out of range rather than silently rounded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// A decimal or hex literal without fraction or exponent that fits.
    Int(i64),
    /// Everything else, including `Infinity`, `NaN` and integers too large
    /// for `i64`.
    Float(f64),
}

/// One `key: value` pair of an object, with the key's own position.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub value: Value,
}

/// A parsed document: the tree plus the duplicate-key errors found on the
/// way, kept apart so that the schema walk can still report its own
/// problems in the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub value: Value,
    pub duplicates: Vec<ConfigError>,
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.kind {
            Kind::Object(members) => members.iter().find(|m| m.key == key).map(|m| &m.value),
            _ => None,
        }
    }

    /// How to name this value in an error message: its text for scalars,
    /// its kind for containers.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Number(n) => n.to_string(),
            Kind::String(s) => format!("the string {}", quote_snippet(s)),
            Kind::Array(_) => "an array".into(),
            Kind::Object(_) => "an object".into(),
        }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) if x.is_nan() => f.write_str("NaN"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "Infinity" } else { "-Infinity" })
            }
            // Plain notation of 1e300 would be 300 digits long.
            Number::Float(x) if x != 0.0 && !(1e-6..1e15).contains(&x.abs()) => write!(f, "{x:e}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Longest user text quoted in an error message.
const SNIPPET_CHARS: usize = 40;

/// User text for an error message, cut short so that one bad value cannot
/// flood the operator's terminal.
pub fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or("")),
    }
}

/// Like `snippet`, in double quotes with escapes.
pub fn quote_snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", s.get(..cut).unwrap_or("")),
    }
}

/// Parse a whole document; the first syntax error or duplicate key is the
/// error.
pub fn parse_value(text: &str) -> Result<Value, ConfigError> {
    let doc = parse_document(text)?;
    match doc.duplicates.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(doc.value),
    }
}

/// Parse a whole document. A syntax error stops the parse (nothing after
/// it can be trusted); duplicate keys do not, and are returned with the
/// tree.
pub fn parse_document(text: &str) -> Result<Document, ConfigError> {
    let mut p = Parser {
        src: text,
        pos: 0,
        line: 1,
        column: 1,
        depth: 0,
        path: Vec::new(),
        duplicates: Vec::new(),
    };
    p.skip_trivia()?;
    if p.peek().is_none() {
        return Err(
            p.error_here("the file holds no value; an empty configuration is written `{}`".into())
        );
    }
    let value = p.parse_value(Context::Top)?;
    p.skip_trivia()?;
    if let Some(c) = p.peek() {
        return Err(p.error_here(format!(
            "expected the end of the file after the top-level value, found {}",
            found(Some(c))
        )));
    }
    Ok(Document {
        value,
        duplicates: p.duplicates,
    })
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier, so
/// that a path always reads back unambiguously.
pub fn join_key(path: &str, key: &str) -> String {
    if is_plain_identifier(key) {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    } else {
        format!("{path}[{key:?}]")
    }
}

/// `path[index]`.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// An ASCII identifier, which every JSON5 reader accepts as an unquoted
/// key. Wider Unicode identifiers are valid JSON5 too, but quoting them is
/// the safe choice for output.
pub fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Where a value is expected, for the "expected ..." part of a message.
#[derive(Clone, Copy)]
enum Context<'k> {
    Top,
    ArrayItem,
    MemberValue(&'k str),
}

impl Context<'_> {
    fn expected(self) -> String {
        match self {
            Context::Top => "a value".into(),
            Context::ArrayItem => "a value or ']'".into(),
            Context::MemberValue(key) => format!("a value after `{}:`", snippet(key)),
        }
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character; always on a char boundary.
    pos: usize,
    line: usize,
    column: usize,
    depth: usize,
    /// Where we are, only to name the path of a duplicate key.
    path: Vec<Seg>,
    duplicates: Vec<ConfigError>,
}

type PResult<T> = Result<T, ConfigError>;

/// JSON5 white space: ECMAScript's WhiteSpace and LineTerminator, with
/// the Unicode "Zs" characters spelled out.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{B}'
            | '\u{C}'
            | '\r'
            | ' '
            | '\u{A0}'
            | '\u{FEFF}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

fn is_line_end(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_ident_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_alphabetic()
}

fn is_ident_part(c: char) -> bool {
    // Rust's alphanumeric covers ECMAScript's letters, digits and most
    // combining marks; ZWNJ and ZWJ are allowed explicitly by the spec.
    is_ident_start(c) || c.is_alphanumeric() || c == '\u{200C}' || c == '\u{200D}'
}

/// How to name the character we stopped at.
fn found(c: Option<char>) -> String {
    match c {
        None => "the end of the file".into(),
        Some('\n' | '\r' | '\u{2028}' | '\u{2029}') => "the end of the line".into(),
        Some('\'') => "\"'\"".into(),
        Some(c) if c.is_control() || (c != ' ' && is_space(c)) => {
            format!("U+{:04X}", c as u32)
        }
        Some(c) => format!("'{c}'"),
    }
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        // CRLF counts once: the CR is an ordinary column, the LF ends the
        // line.
        if c == '\n' || (c == '\r' && self.peek() != Some('\n')) {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn here(&self) -> (usize, usize) {
        (self.line, self.column)
    }

    fn error_at(&self, (line, column): (usize, usize), message: String) -> ConfigError {
        ConfigError {
            line,
            column,
            path: String::new(),
            message,
        }
    }

    fn error_here(&self, message: String) -> ConfigError {
        self.error_at(self.here(), message)
    }

    fn path_string(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            s = match seg {
                Seg::Key(k) => join_key(&s, k),
                Seg::Index(i) => join_index(&s, *i),
            };
        }
        s
    }

    fn skip_trivia(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(c) if is_space(c) => {
                    self.bump();
                }
                Some('/') => {
                    let start = self.here();
                    match self.peek_second() {
                        Some('/') => {
                            while let Some(c) = self.peek() {
                                if is_line_end(c) {
                                    break;
                                }
                                self.bump();
                            }
                        }
                        Some('*') => {
                            self.bump();
                            self.bump();
                            loop {
                                match self.peek() {
                                    None => {
                                        return Err(self.error_at(
                                            start,
                                            "unterminated comment: this '/*' has no closing '*/'"
                                                .into(),
                                        ))
                                    }
                                    Some('*') if self.peek_second() == Some('/') => {
                                        self.bump();
                                        self.bump();
                                        break;
                                    }
                                    Some(_) => {
                                        self.bump();
                                    }
                                }
                            }
                        }
                        other => {
                            return Err(self.error_at(
                                start,
                                format!(
                                    "expected '//' or '/*' to start a comment, found '/' followed by {}",
                                    found(other)
                                ),
                            ))
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn parse_value(&mut self, ctx: Context<'_>) -> PResult<Value> {
        let start = self.here();
        let kind = match self.peek() {
            Some('{') => return self.parse_object(),
            Some('[') => return self.parse_array(),
            Some('"' | '\'') => Kind::String(self.parse_string()?),
            Some(c) if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') => {
                Kind::Number(self.parse_number()?)
            }
            Some(c) if is_ident_start(c) || c == '\\' => {
                let (word, escaped) = self.parse_identifier()?;
                match (word.as_str(), escaped) {
                    ("true", false) => Kind::Bool(true),
                    ("false", false) => Kind::Bool(false),
                    ("null", false) => Kind::Null,
                    ("Infinity", false) => Kind::Number(Number::Float(f64::INFINITY)),
                    ("NaN", false) => Kind::Number(Number::Float(f64::NAN)),
                    _ => {
                        return Err(self.error_at(
                            start,
                            format!(
                                "expected {}, found `{}` (strings must be in quotes)",
                                ctx.expected(),
                                snippet(&word)
                            ),
                        ));
                    }
                }
            }
            other => {
                return Err(self.error_here(format!(
                    "expected {}, found {}",
                    ctx.expected(),
                    found(other)
                )))
            }
        };
        Ok(Value {
            kind,
            line: start.0,
            column: start.1,
        })
    }

    fn enter(&mut self, what: &str) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error_here(format!(
                "this {what} is nested too deeply: at most {MAX_DEPTH} levels of objects and arrays are allowed"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_object(&mut self) -> PResult<Value> {
        let (line, column) = self.here();
        self.enter("object")?;
        self.bump();
        let mut members: Vec<Member> = Vec::new();
        // Key -> line of its first occurrence.
        let mut seen: HashMap<String, usize> = HashMap::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some('}') {
                self.bump();
                break;
            }
            let key_pos = self.here();
            let key = match self.peek() {
                Some('"' | '\'') => self.parse_string()?,
                Some(c) if is_ident_start(c) || c == '\\' => self.parse_identifier()?.0,
                other => {
                    return Err(
                        self.error_here(format!("expected a key or '}}', found {}", found(other)))
                    )
                }
            };
            self.skip_trivia()?;
            if self.peek() != Some(':') {
                return Err(self.error_here(format!(
                    "expected ':' after the key `{}`, found {}",
                    snippet(&key),
                    found(self.peek())
                )));
            }
            self.bump();
            self.skip_trivia()?;
            self.path.push(Seg::Key(key.clone()));
            let value = self.parse_value(Context::MemberValue(&key))?;
            if let Some(&first_line) = seen.get(&key) {
                let path = self.path_string();
                self.duplicates.push(ConfigError {
                    line: key_pos.0,
                    column: key_pos.1,
                    path,
                    message: format!(
                        "duplicate key `{}`: first on line {first_line}, again on line {}",
                        snippet(&key),
                        key_pos.0
                    ),
                });
            } else {
                seen.insert(key.clone(), key_pos.0);
                members.push(Member {
                    key,
                    line: key_pos.0,
                    column: key_pos.1,
                    value,
                });
            }
            self.path.pop();
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    break;
                }
                other => {
                    return Err(self.error_here(format!(
                        "expected ',' or '}}' after a value, found {}",
                        found(other)
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(Value {
            kind: Kind::Object(members),
            line,
            column,
        })
    }

    fn parse_array(&mut self) -> PResult<Value> {
        let (line, column) = self.here();
        self.enter("array")?;
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(']') {
                self.bump();
                break;
            }
            self.path.push(Seg::Index(items.len()));
            let item = self.parse_value(Context::ArrayItem)?;
            self.path.pop();
            items.push(item);
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    break;
                }
                other => {
                    return Err(self.error_here(format!(
                        "expected ',' or ']' after a value, found {}",
                        found(other)
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(Value {
            kind: Kind::Array(items),
            line,
            column,
        })
    }

    /// `count` hex digits after an escape that started at `esc`.
    fn hex_digits(&mut self, count: usize, esc: (usize, usize), what: &str) -> PResult<u32> {
        let mut acc = 0u32;
        for _ in 0..count {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    self.bump();
                    acc = acc * 16 + d;
                }
                None => {
                    return Err(self.error_at(
                        esc,
                        format!(
                            "{what} must be followed by {count} hex digits, found {}",
                            found(self.peek())
                        ),
                    ))
                }
            }
        }
        Ok(acc)
    }

    /// The rest of a `\u` escape (the `\u` itself already consumed),
    /// joining a UTF-16 surrogate pair written as two escapes.
    fn unicode_escape(&mut self, esc: (usize, usize)) -> PResult<char> {
        let unit = self.hex_digits(4, esc, "\\u")?;
        let code = match unit {
            0xD800..=0xDBFF => {
                if self.peek() != Some('\\') || self.peek_second() != Some('u') {
                    return Err(self.error_at(
                        esc,
                        format!("\\u{unit:04X} is the first half of a surrogate pair, but no \\uDC00..\\uDFFF follows"),
                    ));
                }
                let low_esc = self.here();
                self.bump();
                self.bump();
                let low = self.hex_digits(4, low_esc, "\\u")?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error_at(
                        esc,
                        format!("\\u{unit:04X} is the first half of a surrogate pair, but \\u{low:04X} is not a second half"),
                    ));
                }
                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.error_at(
                    esc,
                    format!(
                        "\\u{unit:04X} is the second half of a surrogate pair without a first half"
                    ),
                ))
            }
            other => other,
        };
        char::from_u32(code).ok_or_else(|| {
            self.error_at(esc, format!("\\u escape for U+{code:X} is not a character"))
        })
    }

    fn parse_string(&mut self) -> PResult<String> {
        let start = self.here();
        let Some(quote) = self.bump() else {
            return Err(self.error_here("expected a string".into()));
        };
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error_at(
                        start,
                        format!("unterminated string: the file ends before the closing {quote}"),
                    ))
                }
                Some('\n' | '\r') => {
                    return Err(self.error_at(
                        start,
                        format!(
                            "unterminated string: the line ends before the closing {quote} (write \\n for a line break inside a string)"
                        ),
                    ))
                }
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    let esc = self.here();
                    self.bump();
                    let Some(e) = self.bump() else {
                        return Err(self.error_at(
                            start,
                            format!("unterminated string: the file ends before the closing {quote}"),
                        ));
                    };
                    match e {
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{C}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\u{B}'),
                        '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => out.push('\0'),
                        '0'..='9' => {
                            return Err(self.error_at(
                                esc,
                                format!("\\{e} is an octal escape, which JSON5 does not allow; use \\x or \\u"),
                            ))
                        }
                        'x' => {
                            let code = self.hex_digits(2, esc, "\\x")?;
                            // Two hex digits are at most U+00FF, always a
                            // character.
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        'u' => out.push(self.unicode_escape(esc)?),
                        // A backslash before a line break joins the lines.
                        '\r' => {
                            if self.peek() == Some('\n') {
                                self.bump();
                            }
                        }
                        '\n' | '\u{2028}' | '\u{2029}' => {}
                        other => out.push(other),
                    }
                }
                Some(c) => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// An identifier, and whether it used `\u` escapes (an escaped `true`
    /// is a name, not the literal).
    fn parse_identifier(&mut self) -> PResult<(String, bool)> {
        let mut name = String::new();
        let mut escaped = false;
        loop {
            let pos = self.here();
            let c = match self.peek() {
                Some('\\') => {
                    self.bump();
                    if self.peek() != Some('u') {
                        return Err(self.error_at(
                            pos,
                            format!(
                                "expected \\uXXXX in an unquoted name, found '\\' followed by {}",
                                found(self.peek())
                            ),
                        ));
                    }
                    self.bump();
                    let c = self.unicode_escape(pos)?;
                    let ok = if name.is_empty() {
                        is_ident_start(c)
                    } else {
                        is_ident_part(c)
                    };
                    if !ok {
                        return Err(self.error_at(
                            pos,
                            format!(
                                "U+{:04X} is not allowed in an unquoted name; put the name in quotes",
                                c as u32
                            ),
                        ));
                    }
                    escaped = true;
                    c
                }
                Some(c)
                    if (name.is_empty() && is_ident_start(c))
                        || (!name.is_empty() && is_ident_part(c)) =>
                {
                    self.bump();
                    c
                }
                _ => break,
            };
            name.push(c);
        }
        Ok((name, escaped))
    }

    fn digits(&mut self) -> usize {
        let mut n = 0;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            n += 1;
        }
        n
    }

    fn parse_number(&mut self) -> PResult<Number> {
        let start = self.here();
        let negative = match self.peek() {
            Some('-') => {
                self.bump();
                true
            }
            Some('+') => {
                self.bump();
                false
            }
            _ => false,
        };
        let sign = if negative { -1.0 } else { 1.0 };
        // Infinity and NaN may carry a sign too.
        if self.peek().is_some_and(is_ident_start) {
            let word_pos = self.here();
            let (word, escaped) = self.parse_identifier()?;
            return match (word.as_str(), escaped) {
                ("Infinity", false) => Ok(Number::Float(sign * f64::INFINITY)),
                ("NaN", false) => Ok(Number::Float(f64::NAN)),
                _ => Err(self.error_at(
                    word_pos,
                    format!(
                        "expected a number after the sign, found `{}`",
                        snippet(&word)
                    ),
                )),
            };
        }
        if self.peek() == Some('0') && matches!(self.peek_second(), Some('x' | 'X')) {
            self.bump();
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                return Err(self.error_here(format!(
                    "expected hex digits after '0x', found {}",
                    found(self.peek())
                )));
            }
            // Exact while it fits; beyond that only the magnitude matters
            // (it is out of every range the schema accepts).
            let mut exact: Option<u128> = Some(0);
            let mut approx = 0f64;
            while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                self.bump();
                exact = exact
                    .and_then(|v| v.checked_mul(16))
                    .and_then(|v| v.checked_add(u128::from(d)));
                approx = approx * 16.0 + f64::from(d);
            }
            let signed =
                exact
                    .and_then(|v| i128::try_from(v).ok())
                    .map(|v| if negative { -v } else { v });
            return Ok(match signed.and_then(|v| i64::try_from(v).ok()) {
                Some(v) => Number::Int(v),
                None => Number::Float(sign * approx),
            });
        }
        let digits_start = self.pos;
        let first_is_zero = self.peek() == Some('0');
        let int_digits = self.digits();
        if first_is_zero && int_digits > 1 {
            return Err(self.error_at(
                start,
                "a number may not start with 0 unless it is 0 (octal-looking numbers are not allowed)"
                    .into(),
            ));
        }
        let mut integral = true;
        let mut frac_digits = 0;
        if self.peek() == Some('.') {
            integral = false;
            self.bump();
            frac_digits = self.digits();
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(self.error_here(format!(
                "expected a digit in this number, found {}",
                found(self.peek())
            )));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            integral = false;
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.digits() == 0 {
                return Err(self.error_here(format!(
                    "expected digits in the exponent, found {}",
                    found(self.peek())
                )));
            }
        }
        let text = self.src.get(digits_start..self.pos).unwrap_or("");
        if integral {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(Number::Int(if negative { -v } else { v }));
            }
        }
        match text.parse::<f64>() {
            Ok(v) => Ok(Number::Float(sign * v)),
            Err(_) => Err(self.error_at(start, format!("{text:?} is not a valid number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        match parse_value(text) {
            Ok(v) => v,
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    fn kind(text: &str) -> Kind {
        val(text).kind
    }

    fn err(text: &str) -> ConfigError {
        match parse_value(text) {
            Ok(v) => panic!("{text:?} parsed as {v:?}"),
            Err(e) => e,
        }
    }

    fn assert_err(text: &str, line: usize, column: usize, needle: &str) {
        let e = err(text);
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
        assert!(
            e.message.contains(needle),
            "{text:?}: {e:?} lacks {needle:?}"
        );
    }

    fn string(text: &str) -> String {
        match kind(text) {
            Kind::String(s) => s,
            other => panic!("{text:?} is {other:?}"),
        }
    }

    fn num(text: &str) -> Number {
        match kind(text) {
            Kind::Number(n) => n,
            other => panic!("{text:?} is {other:?}"),
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(kind("null"), Kind::Null);
        assert_eq!(kind("true"), Kind::Bool(true));
        assert_eq!(kind(" false "), Kind::Bool(false));
        assert_eq!(num("0"), Number::Int(0));
        assert_eq!(num("-0"), Number::Int(0));
        assert_eq!(num("5000"), Number::Int(5000));
        assert_eq!(num("+5000"), Number::Int(5000));
        assert_eq!(num("-12"), Number::Int(-12));
        assert_eq!(num("1.5"), Number::Float(1.5));
        assert_eq!(num(".5"), Number::Float(0.5));
        assert_eq!(num("5."), Number::Float(5.0));
        assert_eq!(num("-.25"), Number::Float(-0.25));
        assert_eq!(num("1e3"), Number::Float(1000.0));
        assert_eq!(num("1E-2"), Number::Float(0.01));
        assert_eq!(num("2.e+1"), Number::Float(20.0));
        assert_eq!(num("0x1F"), Number::Int(31));
        assert_eq!(num("0XfF"), Number::Int(255));
        assert_eq!(num("-0x10"), Number::Int(-16));
        assert_eq!(num("+0x10"), Number::Int(16));
        assert_eq!(num("Infinity"), Number::Float(f64::INFINITY));
        assert_eq!(num("-Infinity"), Number::Float(f64::NEG_INFINITY));
        assert_eq!(num("+Infinity"), Number::Float(f64::INFINITY));
        assert!(matches!(num("NaN"), Number::Float(x) if x.is_nan()));
        assert!(matches!(num("-NaN"), Number::Float(x) if x.is_nan()));
        assert_eq!(num("9223372036854775807"), Number::Int(i64::MAX));
        assert!(matches!(num("99999999999999999999"), Number::Float(x) if x > 9e19));
        assert!(
            matches!(num("0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), Number::Float(x) if x > 1e30)
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""plain""#), "plain");
        assert_eq!(string("'single'"), "single");
        assert_eq!(string(r#"'it\'s "quoted"'"#), "it's \"quoted\"");
        assert_eq!(string(r#""a\"b""#), "a\"b");
        assert_eq!(
            string(r#""\b\f\n\r\t\v\0\\\/""#),
            "\u{8}\u{C}\n\r\t\u{B}\0\\/"
        );
        assert_eq!(string(r#""\x41\x7e""#), "A~");
        assert_eq!(string(r#""\u00e9\u65E5""#), "é日");
        assert_eq!(string(r#""\uD83D\uDE00""#), "😀");
        assert_eq!(string(r#""\q\ ""#), "q ");
        assert_eq!(string("\"line \\\ncontinued\""), "line continued");
        assert_eq!(string("\"crlf \\\r\ncontinued\""), "crlf continued");
        assert_eq!(string("\"cr \\\rcontinued\""), "cr continued");
        assert_eq!(string("\"ls \\\u{2028}continued\""), "ls continued");
        assert_eq!(string("\"raw\u{2028}sep\""), "raw\u{2028}sep");
        assert_eq!(string("\"tab\there\""), "tab\there");
        assert_eq!(string("\"日本 ünïcödé\""), "日本 ünïcödé");
    }

    #[test]
    fn objects_arrays_comments_and_positions() {
        let text = "// leading comment\n{\n  /* block\n     comment */ a: 1,\n  'b c': [1, 2, ],\n  \"d\": {e: null,},\n  $f_1: true, // trailing\n}\n";
        let v = val(text);
        assert_eq!((v.line, v.column), (2, 1));
        let Kind::Object(members) = &v.kind else {
            panic!("not an object")
        };
        let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b c", "d", "$f_1"]);
        assert_eq!((members[0].line, members[0].column), (4, 17));
        assert_eq!((members[0].value.line, members[0].value.column), (4, 20));
        assert_eq!((members[1].line, members[1].column), (5, 3));
        let arr = &members[1].value;
        assert_eq!((arr.line, arr.column), (5, 10));
        let Kind::Array(items) = &arr.kind else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].line, items[1].column), (5, 14));
        assert_eq!(
            v.get("d").and_then(|d| d.get("e")).map(|e| &e.kind),
            Some(&Kind::Null)
        );
        assert_eq!(v.get("$f_1").map(|e| &e.kind), Some(&Kind::Bool(true)));
        assert_eq!(kind("[]"), Kind::Array(vec![]));
        assert_eq!(kind("{}"), Kind::Object(vec![]));
        assert_eq!(kind("/**/[/*x*/]/**/"), Kind::Array(vec![]));
    }

    #[test]
    fn identifiers_and_special_keys() {
        let v = val("{ null: 1, true: 2, ünï: 3, \\u0061b: 4, a\\u0062c: 5, Infinity: 6 }");
        let Kind::Object(m) = &v.kind else {
            panic!("not an object")
        };
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["null", "true", "ünï", "ab", "abc", "Infinity"]);
    }

    #[test]
    fn line_endings_and_columns() {
        // CRLF counts as one line; a lone CR too; columns count characters.
        let v = val("{\r\n a: 1,\r b: 'é', c: 2 }");
        let Kind::Object(m) = &v.kind else {
            panic!("not an object")
        };
        assert_eq!((m[0].line, m[0].column), (2, 2));
        assert_eq!((m[1].line, m[1].column), (3, 2));
        assert_eq!((m[2].line, m[2].column), (3, 10));
        // BOM and exotic white space are white space.
        assert_eq!(
            kind("\u{FEFF}\u{A0}\u{3000}\u{B}\u{C}1\u{2028}"),
            Kind::Number(Number::Int(1))
        );
        // A // comment ends at a line terminator.
        assert_eq!(kind("// c\u{2029}2"), Kind::Number(Number::Int(2)));
    }

    #[test]
    fn syntax_errors_have_exact_positions() {
        assert_err(
            "{ a: 1 x }",
            1,
            8,
            "expected ',' or '}' after a value, found 'x'",
        );
        assert_err(
            "[1 2]",
            1,
            4,
            "expected ',' or ']' after a value, found '2'",
        );
        assert_err(
            "{\n  a 1\n}",
            2,
            5,
            "expected ':' after the key `a`, found '1'",
        );
        assert_err("{ a: }", 1, 6, "expected a value after `a:`, found '}'");
        assert_err("{ , }", 1, 3, "expected a key or '}', found ','");
        assert_err("{ a: 1,, }", 1, 8, "expected a key or '}', found ','");
        assert_err("[1,,]", 1, 4, "expected a value or ']', found ','");
        assert_err("{ 1: 2 }", 1, 3, "expected a key or '}', found '1'");
        assert_err("{ a: 1", 1, 7, "found the end of the file");
        assert_err(
            "[",
            1,
            2,
            "expected a value or ']', found the end of the file",
        );
        assert_err("", 1, 1, "holds no value");
        assert_err("  // only a comment\n", 2, 1, "holds no value");
        assert_err(
            "{} {}",
            1,
            4,
            "expected the end of the file after the top-level value, found '{'",
        );
        assert_err(
            "{ a: yes }",
            1,
            6,
            "found `yes` (strings must be in quotes)",
        );
        assert_err("{ a: \\u0074rue }", 1, 6, "found `true`");
        assert_err("{ a: @ }", 1, 6, "expected a value after `a:`, found '@'");
        assert_err("{ a: \u{7} }", 1, 6, "found U+0007");
        assert_err(
            "{ a: / }",
            1,
            6,
            "expected '//' or '/*' to start a comment, found '/' followed by ' '",
        );
        assert_err("{ \\x41: 1 }", 1, 3, "expected \\uXXXX in an unquoted name");
        assert_err(
            "{ a\\u002Db: 1 }",
            1,
            4,
            "U+002D is not allowed in an unquoted name",
        );
    }

    #[test]
    fn number_errors() {
        assert_err("[01]", 1, 2, "may not start with 0");
        assert_err("[-007]", 1, 2, "may not start with 0");
        assert_err("[0x]", 1, 4, "expected hex digits after '0x', found ']'");
        assert_err("[1e]", 1, 4, "expected digits in the exponent, found ']'");
        assert_err("[1e+]", 1, 5, "expected digits in the exponent");
        assert_err("[.]", 1, 3, "expected a digit in this number, found ']'");
        assert_err("[-]", 1, 3, "expected a digit in this number, found ']'");
        assert_err("[+x]", 1, 3, "expected a number after the sign, found `x`");
        assert_err(
            "[1.2.3]",
            1,
            5,
            "expected ',' or ']' after a value, found '.'",
        );
        assert_err("[12abc]", 1, 4, "found 'a'");
    }

    #[test]
    fn string_errors_point_at_the_start_or_the_escape() {
        assert_err(
            "{\n  a: \"open\n}",
            2,
            6,
            "unterminated string: the line ends before the closing \"",
        );
        assert_err(
            "[ 'open",
            1,
            3,
            "unterminated string: the file ends before the closing '",
        );
        assert_err("[ 'open\\", 1, 3, "unterminated string");
        assert_err(
            "[\"a\\x4\"]",
            1,
            4,
            "\\x must be followed by 2 hex digits, found '\"'",
        );
        assert_err(
            "[\"ab\\u12G4\"]",
            1,
            5,
            "\\u must be followed by 4 hex digits, found 'G'",
        );
        assert_err("[\"\\uD83D\"]", 1, 3, "first half of a surrogate pair");
        assert_err("[\"\\uD83D\\u0041\"]", 1, 3, "\\u0041 is not a second half");
        assert_err(
            "[\"\\uDE00\"]",
            1,
            3,
            "second half of a surrogate pair without a first half",
        );
        assert_err("[\"\\1\"]", 1, 3, "octal escape");
        assert_err("[\"\\01\"]", 1, 3, "octal escape");
    }

    #[test]
    fn comment_errors() {
        assert_err(
            "{\n  /* never closed\n  a: 1 }",
            2,
            3,
            "unterminated comment",
        );
        assert_err("[1, /*/ ]", 1, 5, "unterminated comment");
        assert_eq!(
            kind("[1 /***/]"),
            Kind::Array(vec![Value {
                kind: Kind::Number(Number::Int(1)),
                line: 1,
                column: 2
            }])
        );
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let text =
            "{\n  a: {\n    b: 1,\n    c: 2,\n    b: 3,\n  },\n  'x.y': 1,\n  \"x.y\": 2,\n}";
        let doc = match parse_document(text) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.duplicates.len(), 2);
        let e = &doc.duplicates[0];
        assert_eq!((e.line, e.column, e.path.as_str()), (5, 5, "a.b"));
        assert!(
            e.message
                .contains("duplicate key `b`: first on line 3, again on line 5"),
            "{e}"
        );
        assert_eq!(doc.duplicates[1].path, "[\"x.y\"]");
        // The first occurrence is kept.
        assert_eq!(
            doc.value.get("a").and_then(|a| a.get("b")).map(|b| &b.kind),
            Some(&Kind::Number(Number::Int(1)))
        );
        assert_eq!(err(text), doc.duplicates[0]);
    }

    #[test]
    fn nesting_is_capped_without_overflowing_the_stack() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_value(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_err(&deep, 1, MAX_DEPTH + 1, "nested too deeply");
        let hostile = "{a:[".repeat(200_000);
        let e = err(&hostile);
        assert!(e.message.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn large_inputs_parse_in_linear_time() {
        // A hundred thousand keys in one object: a quadratic duplicate
        // check would take minutes here.
        let mut text = String::from("{");
        for i in 0..100_000 {
            text.push_str(&format!("k{i}: [{i}, 'v'],"));
        }
        text.push('}');
        let v = val(&text);
        let Kind::Object(m) = v.kind else {
            panic!("not an object")
        };
        assert_eq!(m.len(), 100_000);
        let long_string = format!("'{}'", "x".repeat(1 << 20));
        assert_eq!(string(&long_string).len(), 1 << 20);
    }

    #[test]
    fn paths_and_descriptions() {
        assert_eq!(join_key("", "rules"), "rules");
        assert_eq!(join_index("rules", 2), "rules[2]");
        assert_eq!(join_key("rules[2]", "input"), "rules[2].input");
        assert_eq!(join_key("pinning", "eth0.100"), "pinning[\"eth0.100\"]");
        assert_eq!(val("'abc'").describe(), "the string \"abc\"");
        assert_eq!(val("1.5").describe(), "1.5");
        assert_eq!(val("1e300").describe(), "1e300");
        assert_eq!(val("-Infinity").describe(), "-Infinity");
        assert_eq!(val("[]").describe(), "an array");
        assert!(val(&format!("'{}'", "y".repeat(100)))
            .describe()
            .ends_with('…'));
    }
}
