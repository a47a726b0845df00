//! Output helpers shared by the verbs: crictl's JSON/YAML/go-template printing, its
//! tabwriter tables, docker's human-readable sizes and truncated IDs.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::protojson::{self, ProtoJson};
use crate::template;

/// `-o/--output` values. Each verb accepts the subset crictl's does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    #[default]
    Table,
    #[value(name = "go-template")]
    GoTemplate,
}

/// A clap value parser for `-o` accepting only `allowed` (names as crictl spells them).
pub fn format_parser(allowed: &'static [&'static str]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(allowed.iter().copied())
        .map(|s| Format::from_str(&s, false).expect("allowed formats are Format names"))
}

/// Prints a k8s-cri message as crictl's `outputProtobufObjAsJSON`/`...AsYAML` do: protojson
/// (proto field order) for JSON, YAML with sorted keys.
pub fn print_message<T: Serialize>(out: &mut dyn Write, message: &T, format: Format) -> Result<()> {
    let pj = ProtoJson::new(message)?;
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&pj)?)?,
        // sigs.k8s.io/yaml's output ends in a newline and crictl prints it with Println.
        Format::Yaml => writeln!(out, "{}", to_yaml(&pj.to_value())?)?,
        other => bail!("unsupported format: {other:?}"),
    }
    Ok(())
}

/// One object of crictl's `outputStatusData`: `{"status": ..., <info keys>: ...}`.
#[derive(Debug, Default)]
pub struct StatusData {
    /// The protojson of the status message.
    pub status: Option<Value>,
    /// Extra top-level entries (crictl's `runtimeHandlers`, `features`).
    pub extra: Vec<(String, Value)>,
    /// The verbose `info` map of the reply, each value parsed as crictl does.
    pub info: HashMap<String, String>,
}

impl StatusData {
    /// The status and its protojson form.
    pub fn new<T: Serialize>(status: Option<&T>) -> Result<Self> {
        Ok(Self {
            status: status.map(protojson::to_value).transpose()?,
            ..Self::default()
        })
    }

    pub fn with_info(mut self, info: HashMap<String, String>) -> Self {
        self.info = info;
        self
    }

    fn into_value(self) -> Result<Value> {
        let mut map = Map::new();
        if let Some(status) = self.status {
            map.insert("status".to_owned(), status);
        }
        for (key, value) in self.extra {
            map.insert(key, value);
        }
        for (key, raw) in self.info {
            map.insert(key.clone(), parse_info_value(&key, &raw)?);
        }
        Ok(Value::Object(map))
    }
}

/// crictl's reading of a verbose `info` value: JSON objects are parsed, anything else is a
/// string with its double quotes trimmed. (JSON arrays are parsed too, where crictl would
/// show the text.)
pub fn parse_info_value(key: &str, raw: &str) -> Result<Value> {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed)
            .with_context(|| format!("unmarshal status info JSON of {key:?}"));
    }
    if trimmed.starts_with('[') {
        if let Ok(value) = serde_json::from_str(trimmed) {
            return Ok(value);
        }
    }
    Ok(Value::String(raw.trim_matches('"').to_owned()))
}

/// Go's `%v` of a `map[string]string`.
pub fn go_map(map: &HashMap<String, String>) -> String {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    let entries: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", entries.join(" "))
}

/// crictl's `outputStatusData`: one entry prints as an object, several as a list; keys
/// sorted; JSON indented by two spaces and HTML-escaped like Go's `json.Marshal`.
pub fn print_status_data(
    out: &mut dyn Write,
    entries: Vec<StatusData>,
    format: Format,
    template: Option<&str>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut values = entries
        .into_iter()
        .map(StatusData::into_value)
        .collect::<Result<Vec<_>>>()?;
    let value = if values.len() == 1 {
        values.remove(0)
    } else {
        Value::Array(values)
    };
    print_value(out, &value, format, template)
}

/// Prints an already-shaped JSON value in a crictl output format.
pub fn print_value(
    out: &mut dyn Write,
    value: &Value,
    format: Format,
    template: Option<&str>,
) -> Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", to_json_pretty(value))?,
        Format::Yaml => writeln!(out, "{}", to_yaml(value)?)?,
        Format::GoTemplate => {
            let template =
                template.ok_or_else(|| anyhow!("--template is required with -o go-template"))?;
            let text = template::execute(template, value).context("execute template")?;
            writeln!(out, "{text}")?;
        }
        Format::Table => bail!("unsupported format: \"table\""),
    }
    Ok(())
}

/// Pretty JSON as Go's `json.Indent(json.Marshal(v), "", "  ")` writes it.
pub fn to_json_pretty(value: &Value) -> String {
    go_html_escape(&serde_json::to_string_pretty(value).expect("a Value serializes"))
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029; in JSON text they can
/// only occur inside strings, so a textual replacement is exact.
pub fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

pub fn to_yaml(value: &Value) -> Result<String> {
    serde_yaml::to_string(value).context("render YAML")
}

/// crictl's table display: Go's `tabwriter.NewWriter(os.Stdout, 20, 1, 3, ' ', 0)`.
/// Every cell but a line's last is padded to its column's width: the widest cell plus
/// three spaces, at least 20.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
    min_width: usize,
    padding: usize,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    pub fn new() -> Self {
        Self::with_layout(20, 3)
    }

    pub fn with_layout(min_width: usize, padding: usize) -> Self {
        Self {
            rows: Vec::new(),
            min_width,
            padding,
        }
    }

    pub fn add_row<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.format(&mut Vec::new(), 0, self.rows.len(), &mut out);
        out
    }

    /// Go tabwriter's `format`: a column block is a run of consecutive lines having a
    /// (tab-terminated) cell in that column; its width is fixed per block.
    fn format(&self, widths: &mut Vec<usize>, mut line0: usize, line1: usize, out: &mut String) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.rows[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(widths, line0, this, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.rows[this].len() {
                width = width.max(self.rows[this][column].chars().count() + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(widths, line0, line1, out);
    }

    fn write_lines(&self, widths: &[usize], line0: usize, line1: usize, out: &mut String) {
        for row in &self.rows[line0..line1] {
            for (j, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if let Some(width) = widths.get(j) {
                    let pad = width.saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
    }
}

/// crictl's `getTruncatedID`: drop `prefix`, keep 13 characters.
pub fn truncate_id(id: &str, prefix: &str) -> String {
    let id = id.strip_prefix(prefix).unwrap_or(id);
    id.chars().take(13).collect()
}

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// docker/go-units `HumanSizeWithPrecision`: decimal units, `%.{precision}g`.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let mut size = size;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), DECIMAL_UNITS[unit])
}

/// docker/go-units `HumanSize` (4 significant digits).
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// Go's `fmt.Sprintf("%.*g", precision, x)` (strconv's `'g'` format).
pub fn format_g(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let prec = precision.max(1);
    let sign = if x.is_sign_negative() && x != 0.0 {
        "-"
    } else {
        ""
    };
    // Correctly rounded significant digits and decimal point position, trailing zeros
    // trimmed: Go's decimalSlice {d, nd, dp}.
    let (digits, dp): (Vec<u8>, i64) = if x == 0.0 {
        (Vec::new(), 0)
    } else {
        let e = format!("{:.*e}", prec - 1, x.abs());
        let (mantissa, exp) = e.split_once('e').expect("{:e} has an exponent");
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        (digits, exp.parse::<i64>().expect("integer exponent") + 1)
    };
    let nd = digits.len() as i64;
    let mut prec = prec as i64;
    let mut eprec = prec;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let digit = |i: i64| -> char {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };
    let mut out = String::from(sign);
    if exp < -4 || exp >= eprec {
        // %e with prec-1 decimals.
        if prec > nd {
            prec = nd;
        }
        out.push(digit(0));
        if prec > 1 {
            out.push('.');
            for i in 1..prec {
                out.push(digit(i));
            }
        }
        let exp = if nd == 0 { 0 } else { exp };
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
        return out;
    }
    // %f with max(prec-dp, 0) decimals.
    if prec > dp {
        prec = nd;
    }
    let decimals = (prec - dp).max(0);
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            out.push(digit(dp + i - 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn human_sizes_like_docker_units() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0B"),
            (1.0, "1B"),
            (100.0, "100B"),
            (120.0, "120B"),
            (999.0, "999B"),
            (1000.0, "1kB"),
            (1024.0, "1.02kB"),
            (4261.0, "4.26kB"),
            (12_500.0, "12.5kB"),
            (12_000.0, "12kB"),
            (1_240_000.0, "1.24MB"),
            (2_155_000.0, "2.15MB"), // 2.155 is stored just below: rounds down, as Go does
            (4_264_270.0, "4.26MB"),
            (72_777_812.0, "72.8MB"),
            (999_999.0, "1e+03kB"), // go-units' known quirk
            (1_000_000_000.0, "1GB"),
            (1e24, "1YB"),
            (1e27, "1e+03YB"),
        ];
        for (size, want) in cases {
            assert_eq!(human_size_with_precision(*size, 3), *want, "size {size}");
        }
        assert_eq!(human_size(123_456_789.0), "123.5MB");
        assert_eq!(human_size(2048.0), "2.048kB");
    }

    #[test]
    fn format_g_matches_go() {
        assert_eq!(format_g(0.00001234, 3), "1.23e-05");
        assert_eq!(format_g(0.0001234, 3), "0.000123");
        assert_eq!(format_g(-1.5, 3), "-1.5");
        assert_eq!(format_g(123_456.0, 3), "1.23e+05");
        assert_eq!(format_g(100.0, 1), "1e+02");
    }

    #[test]
    fn truncated_ids() {
        assert_eq!(
            truncate_id("sha256:0123456789abcdef0123", "sha256:"),
            "0123456789abc"
        );
        assert_eq!(truncate_id("<none>", "sha256:"), "<none>");
        assert_eq!(truncate_id("abc", "sha256:"), "abc");
    }

    #[test]
    fn table_like_tabwriter() {
        let mut t = Table::new();
        t.add_row(["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
        t.add_row([
            "docker.io/library/busybox",
            "latest",
            "0123456789abc",
            "2.15MB",
        ]);
        t.add_row(["registry.k8s.io/pause", "3.9", "e6f1816883972", "322kB"]);
        assert_eq!(
            t.render(),
            "IMAGE                       TAG                 IMAGE ID            SIZE\n\
             docker.io/library/busybox   latest              0123456789abc       2.15MB\n\
             registry.k8s.io/pause       3.9                 e6f1816883972       322kB\n"
        );
    }

    #[test]
    fn table_blocks_of_ragged_rows() {
        // A line with fewer cells ends the column block: widths restart after it.
        let mut t = Table::with_layout(0, 1);
        t.add_row(["aaaa", "b", "c"]);
        t.add_row(["a", "bbbb", "c"]);
        t.add_row(["x"]);
        t.add_row(["a", "b"]);
        assert_eq!(t.render(), "aaaa b    c\na    bbbb c\nx\na b\n");
    }

    #[test]
    fn info_values() {
        assert_eq!(parse_info_value("k", "{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_info_value("k", "\"quoted\"").unwrap(),
            json!("quoted")
        );
        assert_eq!(parse_info_value("k", "plain").unwrap(), json!("plain"));
        assert_eq!(parse_info_value("k", "[1,2]").unwrap(), json!([1, 2]));
        assert!(parse_info_value("k", "{broken").is_err());
    }

    #[test]
    fn status_data_shapes() {
        let mut out = Vec::new();
        let entry = StatusData {
            status: Some(json!({"b": "<x>", "a": 1})),
            extra: vec![],
            info: [("info".to_owned(), "{\"z\":true}".to_owned())].into(),
        };
        print_status_data(&mut out, vec![entry], Format::Json, None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"info\": {\n    \"z\": true\n  },\n  \"status\": {\n    \"a\": 1,\n    \"b\": \"\\u003cx\\u003e\"\n  }\n}\n"
        );

        let mut out = Vec::new();
        let entries = vec![
            StatusData {
                status: Some(json!({"id": "1"})),
                ..Default::default()
            },
            StatusData {
                status: Some(json!({"id": "2"})),
                ..Default::default()
            },
        ];
        print_status_data(&mut out, entries, Format::Yaml, None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "- status:\n    id: '1'\n- status:\n    id: '2'\n\n"
        );
    }
}
