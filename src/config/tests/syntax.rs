//! Syntax errors: what the parser stops at, worded for an operator, at the
//! line and column of the offending character (or of the start of the
//! string, comment or word it belongs to).
//!
//! Cases are tables (text, line, column, a piece of the message), one per
//! kind of mistake, so a new case is one line and a failure names its text.

use super::*;

/// Text, the line and column the error points at, and words its message
/// must hold.
type Case = (&'static str, usize, usize, &'static str);

/// Each text gives exactly one error, at that position, with no key path
/// (a syntax error is found before any key means anything).
fn assert_syntax(cases: &[Case]) {
    for &(text, line, column, needle) in cases {
        let e = one(text);
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
        assert_eq!(e.path, "", "{text:?}: {e}");
        assert!(
            e.message.contains(needle),
            "{text:?}: {e:?} lacks {needle:?}"
        );
    }
}

#[test]
fn syntax_errors_come_through_with_positions() {
    let e = one("{\n  rules: [\n    { input: 1 x }\n  ],\n}");
    assert_eq!((e.line, e.column, e.path.as_str()), (3, 16, ""));
    assert_eq!(e.message, "expected ',' or '}' after a value, found 'x'");
    assert_eq!(
        e.to_string(),
        "line 3, column 16: expected ',' or '}' after a value, found 'x'"
    );
    let e = one("{ rules: [ \"open ] }");
    assert_eq!((e.line, e.column), (1, 12));
    assert!(e.message.starts_with("unterminated string"), "{e}");
}

#[rustfmt::skip]
const PUNCTUATION: &[Case] = &[
    ("{ a: 1 x }", 1, 8, "expected ',' or '}' after a value, found 'x'"),
    ("[1 2]", 1, 4, "expected ',' or ']' after a value, found '2'"),
    ("{\n  a 1\n}", 2, 5, "expected ':' after the key `a`, found '1'"),
    ("{ 'b c' 1 }", 1, 9, "expected ':' after the key `b c`, found '1'"),
    ("{ a: }", 1, 6, "expected a value after `a:`, found '}'"),
    ("{ , }", 1, 3, "expected a key or '}', found ','"),
    ("{ a: 1,, }", 1, 8, "expected a key or '}', found ','"),
    ("[1,,]", 1, 4, "expected a value or ']', found ','"),
    ("{ 1: 2 }", 1, 3, "expected a key or '}', found '1'"),
    ("{} {}", 1, 4, "expected the end of the file after the top-level value, found '{'"),
    ("{ a: @ }", 1, 6, "expected a value after `a:`, found '@'"),
    ("{ a: \u{7} }", 1, 6, "found U+0007"),
    ("{ a: / }", 1, 6, "expected '//' or '/*' to start a comment, found '/' followed by ' '"),
];

#[test]
fn punctuation() {
    assert_syntax(PUNCTUATION);
}

// The parser stops at the 'o' of `nope` and the 'x' of `trux`; the
// message names the word from its start.
#[rustfmt::skip]
const UNQUOTED_WORDS_AND_BAD_NUMBERS_ARE_NAMED_WHOLE: &[Case] = &[
    ("{ a: yes }", 1, 6, "expected a value after `a:`, found `yes` (strings must be in quotes)"),
    ("{ a: nope }", 1, 6, "found `nope` (strings must be in quotes)"),
    ("[1, trux]", 1, 5, "expected a value or ']', found `trux`"),
    ("{ a: \\u0074rue }", 1, 6, "found `\\u0074rue`"),
    ("[01]", 1, 2, "`01`: numbers may not start with 0"),
    ("[-007]", 1, 2, "may not start with 0"),
    ("[0x]", 1, 2, "`0x` is not a valid number: expected hex digits after 0x"),
    ("[1e]", 1, 2, "`1e` is not a valid number: expected digits in the exponent"),
    ("[1e+]", 1, 2, "expected digits in the exponent"),
    ("[.]", 1, 2, "`.` is not a valid number: expected a digit"),
    ("[-]", 1, 2, "`-` is not a valid number: expected a number after the sign"),
    ("[+x]", 1, 2, "`+x` is not a valid number: expected a number after the sign"),
    ("[1.2.3]", 1, 2, "`1.2.3` is not a valid number: a number has at most one '.'"),
    ("[12abc]", 1, 4, "found 'a'"),
];

#[test]
fn unquoted_words_and_bad_numbers_are_named_whole() {
    assert_syntax(UNQUOTED_WORDS_AND_BAD_NUMBERS_ARE_NAMED_WHOLE);
}

#[rustfmt::skip]
const KEYS_THAT_ARE_NOT_NAMES: &[Case] = &[
    ("{ \\x41: 1 }", 1, 3, "only \\uXXXX escapes are allowed in an unquoted name"),
    ("{ a\\u002Db: 1 }", 1, 4, "this escape does not make a valid unquoted name; put the key in quotes"),
];

#[test]
fn keys_that_are_not_names() {
    assert_syntax(KEYS_THAT_ARE_NOT_NAMES);
}

#[rustfmt::skip]
const THE_END_OF_THE_FILE: &[Case] = &[
    ("", 1, 1, "holds no value"),
    ("  // only a comment\n", 2, 1, "holds no value"),
    ("{ a: 1", 1, 7, "found the end of the file; the object opened on line 1, column 1 is not closed"),
    ("{ a: [\n  1,\n", 3, 1, "expected a value, found the end of the file; the array opened on line 1, column 6 is not closed"),
    ("[", 1, 2, "found the end of the file"),
    ("{ a:", 1, 5, "expected a value, found the end of the file"),
];

#[test]
fn the_end_of_the_file() {
    assert_syntax(THE_END_OF_THE_FILE);
}

#[rustfmt::skip]
const STRINGS_POINT_AT_THEIR_START_OR_THEIR_ESCAPE: &[Case] = &[
    ("{\n  a: \"open\n}", 2, 6, "unterminated string: the line ends before the closing \""),
    ("[ 'open", 1, 3, "unterminated string: the file ends before the closing '"),
    ("[ 'open\\", 1, 3, "unterminated string"),
    ("[\"a\\x4\"]", 1, 4, "\\x must be followed by 2 hex digits"),
    ("[\"ab\\u12G4\"]", 1, 5, "\\u must be followed by 4 hex digits"),
    ("[\"\\uD83D\"]", 1, 3, "\\uD83D is the first half of a surrogate pair, but no \\uDC00..\\uDFFF follows"),
    ("[\"\\uD83D\\u0041\"]", 1, 3, "\\u0041 is not a second half"),
    ("[\"\\uDE00\"]", 1, 3, "\\uDE00 is the second half of a surrogate pair without a first half"),
    ("[\"\\1\"]", 1, 3, "octal escape"),
    ("[\"\\01\"]", 1, 3, "octal escape"),
];

#[test]
fn strings_point_at_their_start_or_their_escape() {
    assert_syntax(STRINGS_POINT_AT_THEIR_START_OR_THEIR_ESCAPE);
}

#[rustfmt::skip]
const COMMENTS: &[Case] = &[
    ("{\n  /* never closed\n  a: 1 }", 2, 3, "unterminated comment: this '/*' has no closing '*/'"),
    ("[1, /*/ ]", 1, 5, "unterminated comment"),
];

#[test]
fn comments() {
    assert_syntax(COMMENTS);
    assert_eq!(ok("{ /***/ rules: [] /**/ } // end"), Config::default());
}

#[rustfmt::skip]
const POSITIONS_FOLLOW_CRLF_AND_WIDE_CHARACTERS: &[Case] = &[
    ("{\r\n  a: 1,\r\n  b 2 }", 3, 5, "expected ':' after the key `b`"),
    ("{\r  a: 'é日', b 2 }", 2, 14, "expected ':' after the key `b`"),
];

#[test]
fn positions_follow_crlf_and_wide_characters() {
    assert_syntax(POSITIONS_FOLLOW_CRLF_AND_WIDE_CHARACTERS);
}
