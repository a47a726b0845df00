//! The part of Go's text/template that crictl's `-o go-template --template` is used with:
//! text, `{{.a.b}}`, `{{.}}`, `$`, string and integer literals, pipes, the functions
//! crictl adds (`json`, `title`, `lower`, `upper`) plus `index` and `len`, `{{if}}`,
//! `{{range}}`, `{{with}}` (each with `{{else}}`), `{{/* comments */}}` and the `{{-`/`-}}`
//! trim markers. Missing keys are errors (crictl sets `missingkey=error`). Values print
//! as Go's `%v` prints decoded JSON: `map[k:v]`, `[a b]`, `<no value>` for null.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// Executes `template` against `data`.
pub fn execute(template: &str, data: &Value) -> Result<String> {
    let tokens = lex(template)?;
    let mut pos = 0;
    let (nodes, end) = parse(&tokens, &mut pos)?;
    if let Some(end) = end {
        bail!("template: unexpected {{{{{end}}}}}");
    }
    let mut out = String::new();
    run(&nodes, data, data, &mut out)?;
    Ok(out)
}

enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("{{") else {
            push_text(&mut tokens, rest, trim_next, false);
            break;
        };
        let inner = &rest[start + 2..];
        let trim_prev =
            inner.starts_with("- ") || inner.starts_with("-\t") || inner.starts_with("-\n");
        push_text(&mut tokens, &rest[..start], trim_next, trim_prev);
        let end = inner
            .find("}}")
            .ok_or_else(|| anyhow!("template: unclosed action"))?;
        let mut action = &inner[..end];
        if trim_prev {
            action = &action[1..];
        }
        trim_next = action.ends_with(" -") || action.ends_with("\t-") || action.ends_with("\n-");
        if trim_next {
            action = &action[..action.len() - 1];
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            tokens.push(Token::Action(action.to_owned()));
        }
        rest = &inner[end + 2..];
    }
    Ok(tokens)
}

fn push_text(tokens: &mut Vec<Token>, text: &str, trim_start: bool, trim_end: bool) {
    let mut text = text;
    if trim_start {
        text = text.trim_start();
    }
    if trim_end {
        text = text.trim_end();
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text.to_owned()));
    }
}

enum Node {
    Text(String),
    Print(Pipeline),
    /// `if`, `range` or `with`: the keyword, its pipeline, the body and the `else` body.
    Block(&'static str, Pipeline, Vec<Node>, Vec<Node>),
}

type Pipeline = Vec<Vec<Arg>>;

#[derive(Clone, Debug)]
enum Arg {
    /// `.a.b` from dot (`root` false) or `$.a.b` from the root.
    Field {
        root: bool,
        path: Vec<String>,
    },
    Str(String),
    Int(i64),
    Func(String),
}

/// Parses nodes up to an `{{end}}`/`{{else}}` (returned) or the end of input (None).
fn parse(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        *pos += 1;
        let action = match token {
            Token::Text(text) => {
                nodes.push(Node::Text(text.clone()));
                continue;
            }
            Token::Action(action) => action.as_str(),
        };
        if action == "end" || action == "else" {
            return Ok((nodes, Some(action.to_owned())));
        }
        let keyword = ["if", "range", "with"].into_iter().find(|k| {
            action
                .strip_prefix(k)
                .is_some_and(|r| r.starts_with([' ', '\t']))
        });
        match keyword {
            Some(keyword) => {
                let pipeline = parse_pipeline(action[keyword.len()..].trim())?;
                let (body, end) = parse(tokens, pos)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => match parse(tokens, pos)? {
                        (otherwise, Some(end)) if end == "end" => otherwise,
                        _ => bail!("template: {keyword}: missing {{{{end}}}}"),
                    },
                    _ => bail!("template: {keyword}: missing {{{{end}}}}"),
                };
                nodes.push(Node::Block(keyword, pipeline, body, otherwise));
            }
            None => nodes.push(Node::Print(parse_pipeline(action)?)),
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(src: &str) -> Result<Pipeline> {
    let mut commands = vec![Vec::new()];
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            commands.push(Vec::new());
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => bail!("template: unterminated string in {src:?}"),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => bail!("template: unterminated string in {src:?}"),
                    },
                    Some(other) => s.push(other),
                }
            }
            commands.last_mut().expect("never empty").push(Arg::Str(s));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            commands
                .last_mut()
                .expect("never empty")
                .push(parse_word(&word)?);
        }
    }
    if commands.iter().any(Vec::is_empty) {
        bail!("template: empty command in {src:?}");
    }
    Ok(commands)
}

fn parse_word(word: &str) -> Result<Arg> {
    let field = |rest: &str, root| Arg::Field {
        root,
        path: rest
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if word == "." {
        return Ok(field("", false));
    }
    if let Some(rest) = word.strip_prefix('$') {
        return Ok(field(rest, true));
    }
    if let Some(rest) = word.strip_prefix('.') {
        return Ok(field(rest, false));
    }
    if let Ok(n) = word.parse() {
        return Ok(Arg::Int(n));
    }
    if ["json", "title", "lower", "upper", "index", "len"].contains(&word) {
        return Ok(Arg::Func(word.to_owned()));
    }
    bail!("template: function {word:?} not defined")
}

fn run(nodes: &[Node], dot: &Value, root: &Value, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Print(pipeline) => out.push_str(&print(&eval(pipeline, dot, root)?)),
            Node::Block(keyword, pipeline, body, otherwise) => {
                let value = eval(pipeline, dot, root)?;
                match *keyword {
                    "range" => {
                        let items: Vec<&Value> = match &value {
                            Value::Array(items) => items.iter().collect(),
                            Value::Object(map) => map.values().collect(),
                            Value::Null => Vec::new(),
                            other => bail!("template: range can't iterate over {}", print(other)),
                        };
                        if items.is_empty() {
                            run(otherwise, dot, root, out)?;
                        }
                        for item in items {
                            run(body, item, root, out)?;
                        }
                    }
                    "with" if truthy(&value) => run(body, &value, root, out)?,
                    _ if *keyword == "if" && truthy(&value) => run(body, dot, root, out)?,
                    _ => run(otherwise, dot, root, out)?,
                }
            }
        }
    }
    Ok(())
}

fn eval(pipeline: &Pipeline, dot: &Value, root: &Value) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        let (head, args) = command.split_first().expect("commands are not empty");
        let mut values = args
            .iter()
            .map(|a| operand(a, dot, root))
            .collect::<Result<Vec<_>>>()?;
        values.extend(piped.take());
        piped = Some(match head {
            Arg::Func(name) => call(name, values)?,
            other if values.is_empty() => operand(other, dot, root)?,
            _ => bail!("template: can't give arguments to a non-function"),
        });
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn operand(arg: &Arg, dot: &Value, root: &Value) -> Result<Value> {
    match arg {
        Arg::Field {
            root: from_root,
            path,
        } => {
            let mut value = if *from_root { root } else { dot };
            for key in path {
                value = match value {
                    Value::Object(map) => map
                        .get(key)
                        .ok_or_else(|| anyhow!("template: map has no entry for key {key:?}"))?,
                    other => bail!("template: can't evaluate field {key} in {}", print(other)),
                };
            }
            Ok(value.clone())
        }
        Arg::Str(s) => Ok(Value::String(s.clone())),
        Arg::Int(n) => Ok(Value::from(*n)),
        Arg::Func(name) => call(name, Vec::new()),
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value> {
    let one = |args: &[Value]| match args {
        [v] => Ok(v.clone()),
        _ => Err(anyhow!(
            "template: {name} takes one argument, got {}",
            args.len()
        )),
    };
    Ok(match name {
        "json" => Value::String(format!("{}\n", go_json(&one(&args)?))),
        "lower" => Value::String(print(&one(&args)?).to_lowercase()),
        "upper" => Value::String(print(&one(&args)?).to_uppercase()),
        "title" => Value::String(title(&print(&one(&args)?))),
        "len" => Value::from(match one(&args)? {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            other => bail!("template: len of {}", print(&other)),
        }),
        "index" => {
            let (first, keys) = args
                .split_first()
                .ok_or_else(|| anyhow!("template: index needs a value"))?;
            let mut value = first.clone();
            for key in keys {
                value = match (&value, key) {
                    (Value::Object(map), Value::String(k)) => {
                        map.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| items.get(usize::try_from(i).ok()?))
                        .cloned()
                        .ok_or_else(|| anyhow!("template: index {n} out of range"))?,
                    _ => bail!(
                        "template: can't index {} with {}",
                        print(&value),
                        print(key)
                    ),
                };
            }
            value
        }
        other => bail!("template: function {other:?} not defined"),
    })
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '\'';
    }
    out
}

/// Go's `%v` of a value decoded from JSON.
pub fn print(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(print).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", print(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Compact JSON as Go's `encoding/json` writes it (sorted keys, HTML-escaped).
pub fn go_json(value: &Value) -> String {
    crate::output::go_html_escape(&serde_json::to_string(value).expect("a Value serializes"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data() -> Value {
        json!({
            "status": {"id": "sha256:abc", "repoTags": ["a:1", "b:2"], "size": "42", "pinned": false,
                       "spec": {"annotations": {"io.x/y": "z"}}},
            "info": {"pid": 7}
        })
    }

    #[test]
    fn fields_and_text() {
        assert_eq!(
            execute("id={{.status.id}} pid={{ .info.pid }}", &data()).unwrap(),
            "id=sha256:abc pid=7"
        );
        assert_eq!(
            execute("{{.status.repoTags}}", &data()).unwrap(),
            "[a:1 b:2]"
        );
        assert_eq!(execute("{{.info}}", &data()).unwrap(), "map[pid:7]");
        assert_eq!(execute("{{$.info.pid}}", &data()).unwrap(), "7");
    }

    #[test]
    fn functions_and_pipes() {
        assert_eq!(execute("{{json .info}}", &data()).unwrap(), "{\"pid\":7}\n");
        assert_eq!(
            execute("{{.status.id | upper}}", &data()).unwrap(),
            "SHA256:ABC"
        );
        assert_eq!(
            execute("{{title \"hello world\"}}", &data()).unwrap(),
            "Hello World"
        );
        assert_eq!(
            execute("{{index .status.spec.annotations \"io.x/y\"}}", &data()).unwrap(),
            "z"
        );
        assert_eq!(
            execute("{{index .status.repoTags 1}}", &data()).unwrap(),
            "b:2"
        );
        assert_eq!(execute("{{len .status.repoTags}}", &data()).unwrap(), "2");
    }

    #[test]
    fn range_if_with_and_trim() {
        let t = "{{range .status.repoTags}}{{.}}\n{{end}}";
        assert_eq!(execute(t, &data()).unwrap(), "a:1\nb:2\n");
        let t = "{{if .status.pinned}}pinned{{else}}not pinned{{end}}";
        assert_eq!(execute(t, &data()).unwrap(), "not pinned");
        let t = "{{with .info}}{{.pid}}{{end}}";
        assert_eq!(execute(t, &data()).unwrap(), "7");
        let t = "a  {{- /* note */ -}}  {{- .info.pid -}}  b";
        assert_eq!(execute(t, &data()).unwrap(), "a7b");
    }

    #[test]
    fn errors() {
        assert!(execute("{{.nope}}", &data()).is_err());
        assert!(execute("{{if .info}}x", &data()).is_err());
        assert!(execute("{{printf \"%s\" .}}", &data()).is_err());
        assert!(execute("{{.info", &data()).is_err());
    }
}
