//! A serializable report as flat, dotted metric names in field order (`latency.p99_ms`,
//! `failures.connect timeout`, `list.0`), and how the summary prints their values.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// One leaf of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`: an `Option` that was `None` (not measured in this run).
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    /// The value thresholds compare (`true` is 1, `false` 0); none for null and text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Bool(b) => Some(f64::from(u8::from(*b))),
            Self::Null | Self::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("-"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => f.write_str(&number(*n)),
            Self::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_none(),
            Self::Bool(b) => s.serialize_bool(*b),
            // Whole numbers as integers, so counts read as counts in the JSON.
            Self::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => s.serialize_i64(*n as i64),
            Self::Number(n) => s.serialize_f64(*n),
            Self::Text(t) => s.serialize_str(t),
        }
    }
}

/// A number for people: whole numbers without decimals, others with about four significant
/// digits (`45.12`, `0.0123`, `1234.6`).
pub fn number(n: f64) -> String {
    if !n.is_finite() {
        return n.to_string();
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{n:.0}");
    }
    let decimals = match n.abs() {
        a if a >= 1000.0 => 1,
        a if a >= 10.0 => 2,
        a if a >= 1.0 => 3,
        _ => 4,
    };
    let text = format!("{n:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A report flattened: its leaves in field order, and the paths of the empty objects in it
/// (maps with no entry yet, such as `failures` by cause: any `failures.X` may appear later).
#[derive(Debug, Clone, Default)]
pub struct Flat {
    pub leaves: Vec<(String, Value)>,
    pub open_maps: Vec<String>,
}

impl Flat {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.leaves.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The open map `name` would be an entry of, if any.
    pub fn open_map_of(&self, name: &str) -> Option<&str> {
        self.open_maps
            .iter()
            .find(|m| {
                name.len() > m.len() + 1
                    && name.starts_with(m.as_str())
                    && name[m.len()..].starts_with('.')
            })
            .map(String::as_str)
    }

    /// Appends a leaf unless one of that name is already there.
    pub fn push_default(&mut self, name: &str, value: Value) {
        if self.get(name).is_none() {
            self.leaves.push((name.to_owned(), value));
        }
    }
}

/// Flattens `report` into dotted names (nested objects joined with `.`, list items by index).
/// Empty objects are recorded in [`Flat::open_maps`] (see [`crate::report::Run::start`]).
pub fn flatten(report: &(impl Serialize + ?Sized)) -> anyhow::Result<Flat> {
    let text = serde_json::to_string(report)?;
    // Read back in document order (serde_json's own `Value` sorts keys).
    let node: Node = serde_json::from_str(&text)?;
    let mut flat = Flat::default();
    walk(&node, "", &mut flat);
    Ok(flat)
}

fn walk(node: &Node, path: &str, flat: &mut Flat) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match node {
        Node::Map(entries) if entries.is_empty() => {
            if !path.is_empty() {
                flat.open_maps.push(path.to_owned());
            }
        }
        Node::Map(entries) => {
            for (key, value) in entries {
                walk(value, &join(key), flat);
            }
        }
        Node::List(items) => {
            for (n, item) in items.iter().enumerate() {
                walk(item, &join(&n.to_string()), flat);
            }
        }
        Node::Leaf(value) => flat.leaves.push((path.to_owned(), value.clone())),
    }
}

/// A JSON document that keeps its keys in order.
enum Node {
    Leaf(Value),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Number(v as f64)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Number(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Number(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Text(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Leaf(Value::Text(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    struct Inner {
        p99_ms: f64,
        p50_ms: f64,
    }

    #[derive(Serialize)]
    struct Report {
        scenario: &'static str,
        zeta: u64,
        latency: Inner,
        failures: BTreeMap<String, u64>,
        empty: BTreeMap<String, u64>,
        rss: Option<u64>,
        ok: bool,
        list: Vec<u32>,
    }

    #[test]
    fn nested_reports_flatten_to_dotted_names_in_field_order() {
        let report = Report {
            scenario: "writes",
            zeta: 7,
            latency: Inner {
                p99_ms: 12.5,
                p50_ms: 1.0,
            },
            failures: BTreeMap::from([("connect timeout".to_owned(), 3)]),
            empty: BTreeMap::new(),
            rss: None,
            ok: true,
            list: vec![4, 5],
        };
        let flat = flatten(&report).unwrap_or_default();
        let names: Vec<&str> = flat.leaves.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "scenario",
                "zeta",
                "latency.p99_ms",
                "latency.p50_ms",
                "failures.connect timeout",
                "rss",
                "ok",
                "list.0",
                "list.1"
            ]
        );
        assert_eq!(flat.get("latency.p99_ms"), Some(&Value::Number(12.5)));
        assert_eq!(flat.get("rss"), Some(&Value::Null));
        assert_eq!(flat.get("ok").and_then(Value::as_f64), Some(1.0));
        assert_eq!(flat.get("scenario").and_then(Value::as_f64), None);
        assert_eq!(flat.open_maps, ["empty"]);
        assert_eq!(flat.open_map_of("empty.HTTP 503"), Some("empty"));
        assert_eq!(flat.open_map_of("empty"), None);
        assert_eq!(flat.open_map_of("emptyish.x"), None);
    }

    #[test]
    fn numbers_print_briefly() {
        assert_eq!(number(12_345.0), "12345");
        assert_eq!(number(45.123_456), "45.12");
        assert_eq!(number(1234.56), "1234.6");
        assert_eq!(number(0.012_34), "0.0123");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.000_01), "0");
        assert_eq!(
            serde_json::to_string(&[Value::Number(3.0), Value::Number(0.5), Value::Null])
                .unwrap_or_default(),
            "[3,0.5,null]"
        );
    }
}
