//! A JSON5 document as a tree that remembers where every value came from.
//!
//! Owns: the spanned value tree (`Value`, `Kind`, `Number`, `Member`), how
//! text becomes that tree, duplicate keys, and how user text and key paths
//! are quoted in messages. The JSON5 grammar itself (spec.json5.org) is the
//! `json5` crate's: it parses the text into the tree through serde. The
//! crate keeps no positions, so `scan` supplies them, and it recurses once
//! per level of nesting, so `scan` refuses deep nesting before it runs.
//! `syntax` words the crate's errors. It knows nothing about MCR's schema;
//! `schema` walks the tree.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::scan::{self, Pos};
use super::{syntax, ConfigError};

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
    /// and only its first occurrence is kept.
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
    fn unplaced(kind: Kind) -> Value {
        Value {
            kind,
            line: 0,
            column: 0,
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

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// Parse a whole document. A syntax error stops the parse (nothing after
/// it can be trusted); duplicate keys do not, and are returned with the
/// tree.
pub fn parse_document(text: &str) -> Result<Document, ConfigError> {
    // Before the parser: it must never see nesting deeper than MAX_DEPTH.
    let places = scan::prescan(text)?;
    let mut value: Value = json5::from_str(text).map_err(|e| syntax::error(text, &e))?;
    let mut placer = Placer {
        values: places.values.iter(),
        keys: places.keys.iter(),
        path: Vec::new(),
        duplicates: Vec::new(),
    };
    placer.place(&mut value);
    Ok(Document {
        value,
        duplicates: placer.duplicates,
    })
}

/// Gives each value and key of a parsed tree its position, in the order
/// the pre-scan recorded them, and drops repeated keys.
struct Placer<'p> {
    values: std::slice::Iter<'p, Pos>,
    keys: std::slice::Iter<'p, Pos>,
    /// Where we are, only to name the path of a duplicate key.
    path: Vec<Seg>,
    duplicates: Vec<ConfigError>,
}

enum Seg {
    Key(String),
    Index(usize),
}

/// Only reached if the pre-scan and the parser disagreed about a document
/// the parser accepted; a position at the top beats none.
const NOWHERE: Pos = (1, 1);

impl Placer<'_> {
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

    fn place(&mut self, v: &mut Value) {
        (v.line, v.column) = self.values.next().copied().unwrap_or(NOWHERE);
        match &mut v.kind {
            Kind::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.path.push(Seg::Index(i));
                    self.place(item);
                    self.path.pop();
                }
            }
            Kind::Object(members) => {
                // Key -> line of its first occurrence.
                let mut seen: HashMap<String, usize> = HashMap::new();
                let all = std::mem::take(members);
                for mut m in all {
                    (m.line, m.column) = self.keys.next().copied().unwrap_or(NOWHERE);
                    self.path.push(Seg::Key(m.key.clone()));
                    // A repeated key's value is placed too, to keep the
                    // values after it in step with the pre-scan.
                    self.place(&mut m.value);
                    if let Some(&first) = seen.get(&m.key) {
                        self.duplicates.push(ConfigError {
                            line: m.line,
                            column: m.column,
                            path: self.path_string(),
                            message: format!(
                                "duplicate key `{}`: first on line {first}, again on line {}",
                                snippet(&m.key),
                                m.line
                            ),
                        });
                    } else {
                        seen.insert(m.key.clone(), m.line);
                        members.push(m);
                    }
                    self.path.pop();
                }
            }
            _ => {}
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Takes whatever the parser found; no shape is wrong at this stage, the
/// schema walk judges shapes with positions at hand.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON5 value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::Bool(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::Number(Number::Int(i))))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        let n = match i64::try_from(u) {
            Ok(i) => Number::Int(i),
            Err(_) => Number::Float(u as f64),
        };
        Ok(Value::unplaced(Kind::Number(n)))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::Number(Number::Float(x))))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::String(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::unplaced(Kind::String(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::unplaced(Kind::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // Repeated keys are all kept here; `Placer` reports and drops them
        // once it knows their lines.
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            members.push(Member {
                key,
                line: 0,
                column: 0,
                value,
            });
        }
        Ok(Value::unplaced(Kind::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        match parse_document(text) {
            Ok(d) if d.duplicates.is_empty() => d.value,
            Ok(d) => panic!("{text:?}: duplicates {:?}", d.duplicates),
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    fn kind(text: &str) -> Kind {
        val(text).kind
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

    fn members(v: &Value) -> &[Member] {
        match &v.kind {
            Kind::Object(m) => m,
            other => panic!("not an object: {other:?}"),
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
        assert_eq!(num("-9223372036854775808"), Number::Int(i64::MIN));
        // Too large for i64: kept as a float, so the schema can say "out
        // of range" rather than the reader refusing the file.
        assert!(matches!(num("99999999999999999999"), Number::Float(x) if x > 9e19));
        assert!(matches!(num("0x1FFFFFFFFFFFFFFFFFFFF"), Number::Float(x) if x > 1e24));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""plain""#), "plain");
        assert_eq!(string("'single'"), "single");
        assert_eq!(string(r#"'it\'s "quoted"'"#), "it's \"quoted\"");
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
        assert_eq!(string("\"raw\u{2028}sep\""), "raw\u{2028}sep");
        assert_eq!(string("\"tab\there\""), "tab\there");
        assert_eq!(string("\"日本 ünïcödé\""), "日本 ünïcödé");
    }

    #[test]
    fn every_value_and_key_has_its_position() {
        let text = "// leading comment\n{\n  /* block\n     comment */ a: 1,\n  'b c': [1, 2, ],\n  \"d\": {e: null,},\n  $f_1: true, // trailing\n}\n";
        let v = val(text);
        assert_eq!((v.line, v.column), (2, 1));
        let m = members(&v);
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b c", "d", "$f_1"]);
        assert_eq!((m[0].line, m[0].column), (4, 17));
        assert_eq!((m[0].value.line, m[0].value.column), (4, 20));
        assert_eq!((m[1].line, m[1].column), (5, 3));
        let arr = &m[1].value;
        assert_eq!((arr.line, arr.column), (5, 10));
        let Kind::Array(items) = &arr.kind else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].line, items[1].column), (5, 14));
        let e = &members(&m[2].value)[0];
        assert_eq!((e.key.as_str(), e.line, e.column), ("e", 6, 9));
        assert_eq!((e.value.kind.clone(), e.value.line), (Kind::Null, 6));
        assert_eq!((m[3].line, m[3].value.column), (7, 9));
        assert_eq!(kind("[]"), Kind::Array(vec![]));
        assert_eq!(kind("{}"), Kind::Object(vec![]));
        assert_eq!(kind("/**/[/*x*/]/**/"), Kind::Array(vec![]));
    }

    #[test]
    fn identifiers_and_special_keys() {
        let v = val("{ null: 1, true: 2, ünï: 3, \\u0061b: 4, a\\u0062c: 5, Infinity: 6 }");
        let keys: Vec<&str> = members(&v).iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["null", "true", "ünï", "ab", "abc", "Infinity"]);
        assert_eq!(members(&v)[4].column, 41);
    }

    #[test]
    fn duplicate_keys_name_both_lines_and_keep_the_first() {
        let text =
            "{\n  a: {\n    b: 1,\n    c: 2,\n    b: [3, {z: 1}],\n  },\n  'x.y': 1,\n  \"x.y\": 2,\n  w: 9,\n}";
        let doc = match parse_document(text) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.duplicates.len(), 2);
        let e = &doc.duplicates[0];
        assert_eq!((e.line, e.column, e.path.as_str()), (5, 5, "a.b"));
        assert_eq!(
            e.message,
            "duplicate key `b`: first on line 3, again on line 5"
        );
        assert_eq!(doc.duplicates[1].path, "[\"x.y\"]");
        let a = members(&doc.value);
        assert_eq!(a.len(), 3, "repeated keys are dropped");
        let first_b = &members(&a[0].value)[0];
        assert_eq!(first_b.value.kind, Kind::Number(Number::Int(1)));
        // The value of a dropped key still took its place: what follows
        // it is placed right.
        assert_eq!(
            (a[2].key.as_str(), a[2].line, a[2].value.column),
            ("w", 9, 6)
        );
    }

    #[test]
    fn the_deepest_nesting_allowed_parses() {
        let depth = scan::MAX_DEPTH;
        let mut v = val(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        let mut levels = 1;
        while let Kind::Array(mut items) = v.kind {
            let Some(inner) = items.pop() else { break };
            v = inner;
            levels += 1;
        }
        assert_eq!(levels, depth);
        assert_eq!((v.line, v.column), (1, depth));
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
        assert_eq!(members(&v).len(), 100_000);
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
