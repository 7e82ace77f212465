//! Syntax errors in the words an operator needs.
//!
//! Owns: turning a `json5::Error` (a code and, mostly, a position) into a
//! `ConfigError` that says what was expected and what was found there. The
//! crate stops at the first error; `scan` tells what encloses that point,
//! which token it falls in, and where an unterminated string or comment
//! began, since the crate reports those only at the end of the line or
//! file.

use json5::ErrorCode as Code;

use super::document::snippet;
use super::scan::{self, Context, Pos, Token, TokenKind, Unclosed};
use super::ConfigError;

/// How to name the character we stopped at.
fn found(c: Option<char>) -> String {
    match c {
        None => "the end of the file".into(),
        Some('\n' | '\r' | '\u{2028}' | '\u{2029}') => "the end of the line".into(),
        Some('\'') => "\"'\"".into(),
        Some(c) if c.is_control() || (c != ' ' && c.is_whitespace()) || c == '\u{FEFF}' => {
            format!("U+{:04X}", c as u32)
        }
        Some(c) => format!("'{c}'"),
    }
}

fn at(pos: Pos, message: String) -> ConfigError {
    ConfigError {
        line: pos.0,
        column: pos.1,
        path: String::new(),
        message,
    }
}

/// What a value was expected after, from the tokens before the error.
fn value_expected(text: &str, cx: &Context) -> String {
    match cx.before {
        [Some(key), Some(Token {
            kind: TokenKind::Colon,
            ..
        })] => format!("a value after `{}:`", key_text(text, &key)),
        [_, Some(Token {
            kind: TokenKind::Open('[') | TokenKind::Comma,
            ..
        })] if matches!(cx.enclosing, Some(('[', _))) => "a value or ']'".into(),
        _ => "a value".into(),
    }
}

/// A key as written, without its quotes.
fn key_text(text: &str, key: &Token) -> String {
    let raw = key.text(text);
    let bare = match key.kind {
        TokenKind::String => raw
            .get(1..raw.len().saturating_sub(1).max(1))
            .unwrap_or(raw),
        _ => raw,
    };
    snippet(bare)
}

/// Where the file ends, and what was still open there.
fn at_end(text: &str, what: &str) -> ConfigError {
    let cx = scan::context_at(text, text.len());
    let open = match cx.enclosing {
        Some((c, (line, column))) => {
            let kind = if c == '{' { "object" } else { "array" };
            format!("; the {kind} opened on line {line}, column {column} is not closed")
        }
        None => String::new(),
    };
    at(
        scan::position_of(text, text.len()),
        format!("expected {what}, found the end of the file{open}"),
    )
}

/// Where a string or comment that never ends began, if the pre-scan saw
/// one.
fn unclosed(text: &str) -> Option<Unclosed> {
    let mut lexer = scan::Lexer::new(text);
    lexer.by_ref().for_each(drop);
    lexer.unclosed
}

/// The words for a parser error on `text`.
pub fn error(text: &str, e: &json5::Error) -> ConfigError {
    // The crate raises end-of-file errors without a position, and a
    // collection around them then gives them its own opening position.
    let Some(p) = e.position().filter(|_| !at_eof(e.code())) else {
        return without_position(text, e);
    };
    let pos = (p.line + 1, p.column + 1);
    let offset = scan::offset_of(text, pos);
    let here = text.get(offset..).and_then(|r| r.chars().next());
    let cx = scan::context_at(text, offset);
    // The word the error falls in, from its start: the parser stops at the
    // first wrong character of `nul` or `01`, an operator reads the word.
    // `0x]` stops at the ']' just after the word.
    let word = cx
        .token
        .filter(|t| t.kind == TokenKind::Word)
        .or(cx.before[1].filter(|t| t.kind == TokenKind::Word && t.end == offset))
        .map(|t| (t.pos, t.text(text)));
    match e.code() {
        Some(Code::ExpectedComma) => {
            let close = match cx.enclosing {
                Some(('{', _)) => '}',
                _ => ']',
            };
            at(
                pos,
                format!(
                    "expected ',' or '{close}' after a value, found {}",
                    found(here)
                ),
            )
        }
        Some(Code::ExpectedColon) => {
            let key = cx.before[1]
                .filter(|t| matches!(t.kind, TokenKind::String | TokenKind::Word))
                .map(|t| format!(" `{}`", key_text(text, &t)))
                .unwrap_or_default();
            at(
                pos,
                format!("expected ':' after the key{key}, found {}", found(here)),
            )
        }
        Some(Code::ExpectedIdentifier | Code::InvalidKey) if here == Some('\\') => at(
            pos,
            "this escape does not make a valid unquoted name; put the key in quotes".into(),
        ),
        Some(Code::ExpectedIdentifier | Code::InvalidKey) => at(
            pos,
            format!(
                "expected a key or '}}', found {} (a key that is not a name must be in quotes)",
                found(here)
            ),
        ),
        Some(Code::InvalidEscapeSequence) => {
            // The parser may stop past the backslash (`\uD83D"` stops at
            // the quote); the operator wants the escape.
            let token = cx.token.unwrap_or(Token {
                kind: TokenKind::String,
                start: offset,
                end: offset,
                pos,
            });
            let start = text
                .get(token.start..offset)
                .and_then(|before| before.rfind('\\'))
                .map_or(offset, |i| token.start + i);
            let pos = scan::position_of(text, start);
            if token.kind == TokenKind::Word {
                at(
                    pos,
                    "only \\uXXXX escapes are allowed in an unquoted name; put the key in quotes"
                        .into(),
                )
            } else {
                escape(pos, text.get(start..).unwrap_or(""))
            }
        }
        Some(Code::TrailingCharacters) => at(
            pos,
            format!(
                "expected the end of the file after the top-level value, found {}",
                found(here)
            ),
        ),
        Some(Code::ExpectedComment) => {
            // The parser points past the '/'; the operator wants the '/'.
            let slash = (pos.0, pos.1.saturating_sub(1).max(1));
            at(
                slash,
                format!(
                    "expected '//' or '/*' to start a comment, found '/' followed by {}",
                    found(here)
                ),
            )
        }
        Some(Code::LineTerminatorInString) => string_cut(text, pos),
        Some(Code::LeadingZero) => {
            let (pos, w) = word.unwrap_or((pos, ""));
            at(
                pos,
                format!(
                    "`{}`: numbers may not start with 0 (hex is written 0x…)",
                    snippet(w)
                ),
            )
        }
        Some(Code::OverflowParsingNumber) => {
            let (pos, w) = word.unwrap_or((pos, ""));
            at(pos, format!("`{}` is too large a number", snippet(w)))
        }
        // A word where a value belongs: a misspelt literal, a bad number,
        // or an unquoted string.
        Some(
            Code::ExpectedValue | Code::ExpectedNull | Code::ExpectedBool | Code::ExpectedNumber,
        )
        | None => match word {
            Some((wpos, w)) if w.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)) => {
                at(wpos, number_problem(w))
            }
            Some((wpos, w)) if w.starts_with(|c: char| c.is_alphabetic() || "_$\\".contains(c)) => {
                let cx = scan::context_at(text, cx.token.map_or(offset, |t| t.start));
                at(
                    wpos,
                    format!(
                        "expected {}, found `{}` (strings must be in quotes)",
                        value_expected(text, &cx),
                        snippet(w)
                    ),
                )
            }
            _ if here == Some('\\') => escape(pos, text.get(offset..).unwrap_or("")),
            _ if e.code().is_none() => at(pos, custom_message(e)),
            _ => at(
                pos,
                format!(
                    "expected {}, found {}",
                    value_expected(text, &cx),
                    found(here)
                ),
            ),
        },
        Some(other) => at(pos, format!("{other}, found {}", found(here))),
    }
}

/// The message of a crate error, without the position it appends.
fn custom_message(e: &json5::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full.get(..i).unwrap_or(&full).to_string(),
        None => full,
    }
}

/// A bad escape at the start of `rest`, which begins with its backslash.
fn escape(pos: Pos, rest: &str) -> ConfigError {
    let mut chars = rest.chars().skip(1);
    let message = match chars.next() {
        Some(d @ '1'..='9') => format!("\\{d} is an octal escape, which JSON5 does not allow"),
        Some('0') => {
            "\\0 followed by a digit is an octal escape, which JSON5 does not allow".into()
        }
        Some('x') => "\\x must be followed by 2 hex digits".into(),
        Some('u') => unicode_escape(rest),
        _ => "invalid escape sequence".into(),
    };
    at(pos, message)
}

/// The 4 hex digits of a `\\u` escape at the start of `s`.
fn code_unit(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("\\u")?.get(..4)?;
    if digits.chars().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

/// What is wrong with the `\\u` escape at the start of `rest`.
fn unicode_escape(rest: &str) -> String {
    match code_unit(rest) {
        None => "\\u must be followed by 4 hex digits".into(),
        Some(unit @ 0xD800..=0xDBFF) => match rest.get(6..).and_then(code_unit) {
            Some(low) => format!(
                "\\u{unit:04X} is the first half of a surrogate pair, but \\u{low:04X} is not a second half (\\uDC00..\\uDFFF)"
            ),
            None => format!(
                "\\u{unit:04X} is the first half of a surrogate pair, but no \\uDC00..\\uDFFF follows"
            ),
        },
        Some(unit @ 0xDC00..=0xDFFF) => {
            format!("\\u{unit:04X} is the second half of a surrogate pair without a first half")
        }
        Some(_) => "invalid \\u escape".into(),
    }
}

/// Why `w`, which starts like a number, is not one.
fn number_problem(w: &str) -> String {
    let unsigned = w.strip_prefix(['+', '-']).unwrap_or(w);
    let why =
        if unsigned.is_empty() || !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            "expected a number after the sign"
        } else if let Some(hex) = unsigned.strip_prefix("0x").or(unsigned.strip_prefix("0X")) {
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                "expected hex digits after 0x"
            } else {
                "not a number"
            }
        } else if unsigned.matches('.').count() > 1 {
            "a number has at most one '.'"
        } else if unsigned.ends_with(['e', 'E', '+', '-']) {
            "expected digits in the exponent"
        } else if !unsigned.chars().any(|c| c.is_ascii_digit()) {
            "expected a digit"
        } else {
            "not a number"
        };
    format!("`{}` is not a valid number: {why}", snippet(w))
}

/// A string cut off by the end of its line, pointed at where it began.
fn string_cut(text: &str, fallback: Pos) -> ConfigError {
    match unclosed(text) {
        Some(Unclosed::String { quote, pos, .. }) => at(
            pos,
            format!("unterminated string: the line ends before the closing {quote}"),
        ),
        _ => at(fallback, "unterminated string: the line ends first".into()),
    }
}

fn at_eof(code: Option<Code>) -> bool {
    matches!(
        code,
        Some(
            Code::EofParsingArray
                | Code::EofParsingBool
                | Code::EofParsingComment
                | Code::EofParsingEscapeSequence
                | Code::EofParsingIdentifier
                | Code::EofParsingNull
                | Code::EofParsingNumber
                | Code::EofParsingObject
                | Code::EofParsingString
                | Code::EofParsingValue
        )
    )
}

/// Errors the crate raises at the end of the text.
fn without_position(text: &str, e: &json5::Error) -> ConfigError {
    let end = || scan::position_of(text, text.len());
    match e.code() {
        Some(Code::EofParsingValue) if scan::Lexer::new(text).next().is_none() => at(
            end(),
            "the file holds no value; an empty configuration is written `{}`".into(),
        ),
        Some(Code::EofParsingString | Code::EofParsingEscapeSequence) => match unclosed(text) {
            Some(Unclosed::String { quote, pos, .. }) => at(
                pos,
                format!("unterminated string: the file ends before the closing {quote}"),
            ),
            _ => at_end(text, "the rest of this escape"),
        },
        Some(Code::EofParsingComment) => match unclosed(text) {
            Some(Unclosed::Comment { pos }) => at(
                pos,
                "unterminated comment: this '/*' has no closing '*/'".into(),
            ),
            _ => {
                let (line, column) = end();
                at(
                    (line, column.saturating_sub(1).max(1)),
                    "expected '//' or '/*' to start a comment, found '/' followed by the end of the file".into(),
                )
            }
        },
        Some(Code::EofParsingObject) => at_end(text, "',' or '}'"),
        Some(Code::EofParsingArray) => at_end(text, "',' or ']'"),
        Some(Code::EofParsingValue) => at_end(text, "a value"),
        Some(Code::EofParsingIdentifier) => at_end(text, "':' after the key"),
        Some(_) => at_end(text, "the rest of this value"),
        None => at(end(), custom_message(e)),
    }
}
