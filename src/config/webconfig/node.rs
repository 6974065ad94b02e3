//! The web config's YAML, read by saphyr-parser into a tree of [`Node`]s that remember their line.
//!
//! Everything YAML allows is read (block and flow style, quoted and block scalars, anchors, aliases and
//! `<<` merge keys, comments, `---` and `...`); what the toolkit's strict decoding (Go's
//! `yaml.UnmarshalStrict`) refuses is refused here: a key written twice in one mapping, and keys that are
//! not scalars. A second document with content is refused too (the toolkit would silently ignore it).
//! What the keys mean is for `decode` and the sections to say.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use super::error::{err_at, quote, WebConfigError};

/// One value of the file and the line (1-based) it starts on.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Node {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    /// A scalar's text and whether it was plain (unquoted, not a block scalar): only plain scalars can be
    /// null, booleans or numbers.
    Scalar(String, bool),
    Seq(Vec<Node>),
    /// Keys in file order, each with the line it is on.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// A plain `~`, `null`, `Null`, `NULL` or nothing at all.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, true) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }
}

/// Most nodes a file may expand to (aliases copy what they name), and deepest nesting: bounds for hostile
/// input such as an alias bomb or ten thousand `[`.
const MAX_NODES: usize = 100_000;
const MAX_DEPTH: usize = 64;

fn scan_err(e: &ScanError) -> WebConfigError {
    // saphyr's lines are 1-based; its text describes the syntax, never quotes the input.
    err_at(e.marker().line().max(1), format!("invalid YAML: {}", e.info()))
}

enum Open {
    Seq(usize, usize, Vec<Node>),
    /// Anchor, line, entries, and the key read but not yet given its value.
    Map(usize, usize, Vec<(String, usize, Node)>, Option<(String, usize)>),
}

/// Parses the text into its (first) document; `None` for an empty file.
pub(super) fn parse_document(text: &str) -> Result<Option<Node>, WebConfigError> {
    let mut parser = Parser::new_from_str(text);
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut nodes = 0usize;
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| scan_err(&e))?;
        let line = span.start.line().max(1);
        let done: Option<(Node, usize)> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                None
            }
            Event::Alias(id) => {
                let n = anchors.get(&id).cloned().ok_or_else(|| err_at(line, "alias to an unknown anchor"))?;
                nodes += count(&n);
                Some((n, 0))
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                Some((Node { line, kind: Kind::Scalar(text.into_owned(), plain) }, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Open::Seq(anchor, line, Vec::new()));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Open::Map(anchor, line, Vec::new(), None));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(anchor, l, items)) => Some((Node { line: l, kind: Kind::Seq(items) }, anchor)),
                _ => return Err(err_at(line, "invalid YAML: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(anchor, l, entries, None)) => {
                    Some((Node { line: l, kind: Kind::Map(merge(entries)?) }, anchor))
                }
                _ => return Err(err_at(line, "invalid YAML: unbalanced mapping")),
            },
        };
        let Some((node, anchor)) = done else {
            if stack.len() > MAX_DEPTH {
                return Err(err_at(line, format!("nested more than {MAX_DEPTH} levels deep")));
            }
            continue;
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(err_at(line, format!("more than {MAX_NODES} values (after expanding aliases)")));
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None if documents > 1 => {
                if !node.is_null() {
                    return Err(err_at(node.line, "only one YAML document is allowed (a second one starts here)"));
                }
            }
            None => root = Some(node),
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, pending)) => match pending.take() {
                Some((key, key_line)) => entries.push((key, key_line, node)),
                None => match node.kind {
                    Kind::Scalar(key, _) => *pending = Some((key, node.line)),
                    _ => return Err(err_at(node.line, "a key must be a plain string, not a list or mapping")),
                },
            },
        }
    }
    Ok(root.filter(|n| !n.is_null()))
}

fn count(n: &Node) -> usize {
    match &n.kind {
        Kind::Scalar(..) => 1,
        Kind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Kind::Map(entries) => 1 + entries.iter().map(|(_, _, v)| count(v)).sum::<usize>(),
    }
}

/// Applies `<<` merge keys (a mapping, or a list of them, whose keys are added unless the mapping sets
/// them itself) and refuses a key written twice.
fn merge(entries: Vec<(String, usize, Node)>) -> Result<Vec<(String, usize, Node)>, WebConfigError> {
    let mut own: Vec<(String, usize, Node)> = Vec::with_capacity(entries.len());
    let mut merged: Vec<(String, usize, Node)> = Vec::new();
    for (key, line, value) in entries {
        if key == "<<" {
            let sources = match value.kind {
                Kind::Seq(items) => items,
                _ => vec![value],
            };
            for s in sources {
                match s.kind {
                    Kind::Map(m) => merged.extend(m),
                    _ => return Err(err_at(line, "<<: a merge key takes a mapping (or a list of mappings)")),
                }
            }
            continue;
        }
        if let Some((_, first, _)) = own.iter().find(|(k, _, _)| *k == key) {
            return Err(err_at(line, format!("key {} already set on line {first}", quote(&key))));
        }
        own.push((key, line, value));
    }
    for (key, line, value) in merged {
        if !own.iter().any(|(k, _, _)| *k == key) {
            own.push((key, line, value));
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: &Node) -> Vec<(String, usize)> {
        match &n.kind {
            Kind::Map(m) => m.iter().map(|(k, l, _)| (k.clone(), *l)).collect(),
            _ => panic!("not a map: {n:?}"),
        }
    }

    #[test]
    fn shapes_and_lines() {
        assert_eq!(parse_document("").unwrap(), None);
        assert_eq!(parse_document("# only a comment\n---\n...\n").unwrap(), None);
        let n = parse_document("---\na: 1\r\n\"b c\": {x: [1, 2]}\n'd': |\n  two\n  lines\n...\n").unwrap().unwrap();
        assert_eq!(keys(&n), [("a".to_string(), 2), ("b c".to_string(), 3), ("d".to_string(), 4)]);
        let Kind::Map(m) = &n.kind else { unreachable!() };
        assert_eq!(m[2].2.kind, Kind::Scalar("two\nlines\n".into(), false));
        assert_eq!(m[0].2.kind, Kind::Scalar("1".into(), true));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = parse_document("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nd: *b\n").unwrap().unwrap();
        let Kind::Map(m) = &n.kind else { unreachable!() };
        assert_eq!(keys(&m[1].2), [("y".to_string(), 4), ("x".to_string(), 1)]);
        assert_eq!(m[2].2, m[0].2);
    }

    #[test]
    fn refusals_name_the_line() {
        let e = |t: &str| parse_document(t).unwrap_err().0;
        assert_eq!(e("a: 1\nb: 2\na: 3\n"), "line 3: key \"a\" already set on line 1");
        assert_eq!(e("a: 1\n---\nb: 2\n"), "line 3: only one YAML document is allowed (a second one starts here)");
        assert_eq!(e("? [a]\n: 1\n"), "line 1: a key must be a plain string, not a list or mapping");
        assert!(e("a: *nope\n").starts_with("line 1: "), "{}", e("a: *nope\n"));
        assert!(e("a: [1\n").starts_with("line "), "{}", e("a: [1\n"));
        assert!(e(&"[".repeat(100)).contains("nested more than 64"));
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
        assert!(e(bomb).contains("more than 100000 values"), "{}", e(bomb));
    }
}
