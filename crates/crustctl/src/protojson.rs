//! protojson rendering of k8s-cri messages, and the reverse for crictl config files.
//!
//! k8s-cri's types derive serde with the proto field names (snake_case), enums as `i32`,
//! 64-bit integers as JSON numbers, bytes as arrays and unset messages as `null`. crictl
//! prints protojson (`EmitDefaultValues`): lowerCamelCase keys, 64-bit integers as strings,
//! enums by name, bytes as base64, unset messages left out, empty lists and maps kept. Which
//! number is 64-bit or an enum is only known from the schema, so both directions walk the
//! serde `Value` alongside the CRI descriptor compiled by `build.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde::de::DeserializeOwned;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

static DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cri_v1_descriptor.bin"));

/// Message and enum descriptors of the CRI v1 API, by full name (`runtime.v1.Image`).
struct Schema {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
    /// Normalized name (lowercase, no `_`/`.`) → full name, to find a Rust type's message.
    by_rust_name: HashMap<String, String>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let set = FileDescriptorSet::decode(DESCRIPTOR).expect("embedded CRI descriptor decodes");
        let mut schema = Schema {
            messages: HashMap::new(),
            enums: HashMap::new(),
            by_rust_name: HashMap::new(),
        };
        for file in set.file {
            let package = file.package().to_owned();
            for message in file.message_type {
                schema.add_message(&package, message);
            }
            for en in file.enum_type {
                schema.enums.insert(format!("{package}.{}", en.name()), en);
            }
        }
        schema
    })
}

impl Schema {
    fn add_message(&mut self, parent: &str, message: DescriptorProto) {
        let full = format!("{parent}.{}", message.name());
        for en in &message.enum_type {
            self.enums
                .insert(format!("{full}.{}", en.name()), en.clone());
        }
        for nested in &message.nested_type {
            self.add_message(&full, nested.clone());
        }
        self.by_rust_name
            .insert(normalize_name(&full), full.clone());
        self.messages.insert(full, message);
    }

    fn message(&self, type_name: &str) -> Option<&DescriptorProto> {
        self.messages.get(type_name.trim_start_matches('.'))
    }

    fn enumeration(&self, type_name: &str) -> Option<&EnumDescriptorProto> {
        self.enums.get(type_name.trim_start_matches('.'))
    }

    /// The map entry message of a `map<K, V>` field, if the field is one.
    fn map_entry(&self, field: &FieldDescriptorProto) -> Option<&DescriptorProto> {
        if field.label() != Label::Repeated || field.r#type() != Type::Message {
            return None;
        }
        self.message(field.type_name())
            .filter(|m| m.options.as_ref().and_then(|o| o.map_entry) == Some(true))
    }
}

fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '.')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The proto full name of a k8s-cri message type, e.g. `k8s_cri::v1::Image` →
/// `runtime.v1.Image` (prost renames `CDIDevice` to `CdiDevice` and nests messages in
/// snake_case modules, hence the normalized lookup).
pub fn proto_name<T: ?Sized>() -> Option<&'static str> {
    let rust = std::any::type_name::<T>();
    let (_, tail) = rust.split_once("::v1::")?;
    let key = normalize_name(&format!("runtime.v1.{tail}").replace("::", "."));
    schema().by_rust_name.get(&key).map(String::as_str)
}

/// Converts snake_case to lowerCamelCase the way protoc derives `json_name`.
pub fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The key k8s-cri's serde uses for a field: prost's snake_case of the proto name
/// (`CDI_devices` → `cdi_devices`; most names are already snake_case).
fn serde_key(field: &FieldDescriptorProto) -> String {
    let name = field.name();
    if !name.chars().any(|c| c.is_ascii_uppercase()) {
        return name.to_owned();
    }
    // heck's word boundaries: `_`, lower→Upper, and the last Upper of an acronym
    // followed by a lowercase letter.
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = vec![String::new()];
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            words.push(String::new());
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase)));
        if boundary {
            words.push(String::new());
        }
        words
            .last_mut()
            .expect("never empty")
            .extend(c.to_lowercase());
    }
    words.retain(|w| !w.is_empty());
    words.join("_")
}

fn json_name(field: &FieldDescriptorProto) -> String {
    match &field.json_name {
        Some(name) if !name.is_empty() => name.clone(),
        _ => lower_camel(field.name()),
    }
}

/// A k8s-cri message in protojson form. Serializing it directly keeps the proto field
/// order (as `protojson.Marshal` does); `serde_json::to_value` of it gives sorted keys (as
/// crictl's re-marshalled `info`/`inspect*` output has).
pub struct ProtoJson {
    value: Value,
    type_name: Option<&'static str>,
}

impl ProtoJson {
    /// Wraps a k8s-cri message; the proto type is found from the Rust type.
    pub fn new<T: Serialize>(message: &T) -> Result<Self> {
        Ok(Self {
            value: serde_json::to_value(message).context("serialize message")?,
            type_name: proto_name::<T>(),
        })
    }

    /// The protojson form as a `Value` (object keys sorted).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("protojson of a JSON value serializes")
    }
}

impl Serialize for ProtoJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.type_name.and_then(|t| schema().message(t)) {
            Some(desc) => MessageOut {
                desc,
                value: &self.value,
            }
            .serialize(s),
            None => Generic(&self.value).serialize(s),
        }
    }
}

/// Shorthand: the protojson `Value` of a k8s-cri message (object keys sorted).
pub fn to_value<T: Serialize>(message: &T) -> Result<Value> {
    Ok(ProtoJson::new(message)?.to_value())
}

/// The protojson `Value` of a message with each field it leaves out (unset messages) present
/// as `null`: what crictl's `marshalMapInOrder` makes of a status, looking every field of the
/// Go struct up in the protojson map.
pub fn to_value_with_nulls<T: Serialize>(message: &T) -> Result<Value> {
    let mut value = to_value(message)?;
    let desc = proto_name::<T>().and_then(|t| schema().message(t));
    if let (Some(desc), Value::Object(map)) = (desc, &mut value) {
        for field in &desc.field {
            map.entry(json_name(field)).or_insert(Value::Null);
        }
    }
    Ok(value)
}

struct MessageOut<'a> {
    desc: &'a DescriptorProto,
    value: &'a Value,
}

impl Serialize for MessageOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(object) = self.value else {
            return Generic(self.value).serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for field in &self.desc.field {
            match object.get(&serde_key(field)) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    map.serialize_entry(&json_name(field), &FieldOut { field, value })?
                }
            }
        }
        // Fields the descriptor lacks (k8s-cri newer than proto/v1.proto): best effort.
        for (key, value) in object {
            if !value.is_null() && !self.desc.field.iter().any(|f| serde_key(f) == *key) {
                map.serialize_entry(&lower_camel(key), &Generic(value))?;
            }
        }
        map.end()
    }
}

struct FieldOut<'a> {
    field: &'a FieldDescriptorProto,
    value: &'a Value,
}

impl Serialize for FieldOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let schema = schema();
        if let Some(entry) = schema.map_entry(self.field) {
            let (Value::Object(object), Some(value_field)) = (self.value, entry.field.get(1))
            else {
                return Generic(self.value).serialize(s);
            };
            // protojson writes map entries sorted by key.
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let mut map = s.serialize_map(Some(keys.len()))?;
            for key in keys {
                map.serialize_entry(
                    key,
                    &SingleOut {
                        field: value_field,
                        value: &object[key],
                    },
                )?;
            }
            return map.end();
        }
        if self.field.label() == Label::Repeated {
            let Value::Array(items) = self.value else {
                return Generic(self.value).serialize(s);
            };
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for value in items {
                seq.serialize_element(&SingleOut {
                    field: self.field,
                    value,
                })?;
            }
            return seq.end();
        }
        SingleOut {
            field: self.field,
            value: self.value,
        }
        .serialize(s)
    }
}

/// One (non-repeated) value of a field.
struct SingleOut<'a> {
    field: &'a FieldDescriptorProto,
    value: &'a Value,
}

impl Serialize for SingleOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = self.value;
        match self.field.r#type() {
            Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64 => {
                match value {
                    Value::Number(n) => s.serialize_str(&n.to_string()),
                    other => Generic(other).serialize(s),
                }
            }
            Type::Enum => {
                let name = value.as_i64().and_then(|n| {
                    let en = schema().enumeration(self.field.type_name())?;
                    en.value
                        .iter()
                        .find(|v| i64::from(v.number()) == n)
                        .map(|v| v.name())
                });
                match name {
                    Some(name) => s.serialize_str(name),
                    None => Generic(value).serialize(s),
                }
            }
            Type::Bytes => match value {
                Value::Array(items) => {
                    let bytes = items
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect::<Option<Vec<u8>>>()
                        .ok_or_else(|| S::Error::custom("bytes field holds a non-byte"))?;
                    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                other => Generic(other).serialize(s),
            },
            Type::Message | Type::Group => match schema().message(self.field.type_name()) {
                Some(desc) => MessageOut { desc, value }.serialize(s),
                None => Generic(value).serialize(s),
            },
            _ => Generic(value).serialize(s),
        }
    }
}

/// Schema-less fallback: lowerCamelCase keys, nulls dropped, values as they are.
struct Generic<'a>(&'a Value);

impl Serialize for Generic<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(object) => {
                let mut map = s.serialize_map(None)?;
                for (key, value) in object.iter().filter(|(_, v)| !v.is_null()) {
                    map.serialize_entry(&lower_camel(key), &Generic(value))?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Generic(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// Reads a k8s-cri message from JSON as crictl's config files are written (Go
/// `encoding/json` of the generated structs: snake_case keys, matched case-insensitively,
/// numeric enums) and also accepts protojson (lowerCamelCase keys, enum names, 64-bit
/// integers as strings, bytes as base64). Missing fields take their proto defaults and
/// unknown keys are ignored, as `json.Unmarshal` does.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T> {
    let type_name = proto_name::<T>()
        .ok_or_else(|| anyhow!("no CRI schema for {}", std::any::type_name::<T>()))?;
    let desc = schema()
        .message(type_name)
        .expect("proto_name returns known messages");
    let normalized = normalize_message(desc, &value, type_name)?;
    serde_json::from_value(normalized).with_context(|| format!("decode {type_name}"))
}

fn normalize_message(desc: &DescriptorProto, value: &Value, path: &str) -> Result<Value> {
    let object = match value {
        Value::Object(object) => object,
        Value::Null => &Map::new(),
        other => return Err(anyhow!("{path}: expected an object, found {other}")),
    };
    let mut out = Map::new();
    for field in &desc.field {
        let json = json_name(field);
        let key = serde_key(field);
        let found = [field.name(), json.as_str(), key.as_str()]
            .into_iter()
            .find_map(|k| object.get(k))
            .or_else(|| {
                // Go's encoding/json matches keys case-insensitively.
                object
                    .iter()
                    .find(|(k, _)| {
                        k.eq_ignore_ascii_case(field.name()) || k.eq_ignore_ascii_case(&json)
                    })
                    .map(|(_, v)| v)
            });
        let path = format!("{path}.{}", field.name());
        let value = match found {
            None | Some(Value::Null) => default_field(field),
            Some(value) => normalize_field(field, value, &path)?,
        };
        out.insert(key, value);
    }
    Ok(Value::Object(out))
}

fn default_field(field: &FieldDescriptorProto) -> Value {
    if schema().map_entry(field).is_some() {
        return Value::Object(Map::new());
    }
    if field.label() == Label::Repeated {
        return Value::Array(Vec::new());
    }
    match field.r#type() {
        Type::Message | Type::Group => Value::Null,
        Type::String => Value::String(String::new()),
        Type::Bool => Value::Bool(false),
        Type::Bytes => Value::Array(Vec::new()),
        Type::Double | Type::Float => Value::from(0.0),
        _ => Value::from(0),
    }
}

fn normalize_field(field: &FieldDescriptorProto, value: &Value, path: &str) -> Result<Value> {
    if let Some(entry) = schema().map_entry(field) {
        let Value::Object(object) = value else {
            return Err(anyhow!("{path}: expected an object, found {value}"));
        };
        let value_field = entry
            .field
            .get(1)
            .ok_or_else(|| anyhow!("{path}: bad map entry"))?;
        let mut out = Map::new();
        for (key, v) in object {
            out.insert(
                key.clone(),
                normalize_single(value_field, v, &format!("{path}.{key}"))?,
            );
        }
        return Ok(Value::Object(out));
    }
    if field.label() == Label::Repeated {
        let Value::Array(items) = value else {
            return Err(anyhow!("{path}: expected a list, found {value}"));
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, v)| normalize_single(field, v, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Value::Array(items));
    }
    normalize_single(field, value, path)
}

fn normalize_single(field: &FieldDescriptorProto, value: &Value, path: &str) -> Result<Value> {
    let bad = || anyhow!("{path}: unexpected value {value}");
    Ok(match field.r#type() {
        Type::Message | Type::Group => {
            let desc = schema()
                .message(field.type_name())
                .ok_or_else(|| anyhow!("{path}: unknown type {}", field.type_name()))?;
            normalize_message(desc, value, path)?
        }
        Type::Enum => match value {
            Value::Number(_) => value.clone(),
            Value::String(name) => {
                let en = schema()
                    .enumeration(field.type_name())
                    .ok_or_else(|| anyhow!("{path}: unknown enum {}", field.type_name()))?;
                let number = en
                    .value
                    .iter()
                    .find(|v| v.name() == name)
                    .map(|v| v.number())
                    .or_else(|| name.parse().ok())
                    .ok_or_else(|| anyhow!("{path}: {name:?} is not a {}", en.name()))?;
                Value::from(number)
            }
            _ => return Err(bad()),
        },
        Type::Bool => match value {
            Value::Bool(_) => value.clone(),
            Value::String(s) => Value::Bool(s.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        Type::String => match value {
            Value::String(_) => value.clone(),
            _ => return Err(bad()),
        },
        Type::Bytes => match value {
            Value::String(s) => {
                let engine = &base64::engine::general_purpose::STANDARD;
                let bytes = engine.decode(s).map_err(|_| bad())?;
                Value::Array(bytes.into_iter().map(Value::from).collect())
            }
            Value::Array(_) => value.clone(),
            _ => return Err(bad()),
        },
        Type::Double | Type::Float => match value {
            Value::Number(_) => value.clone(),
            Value::String(s) => Value::from(s.parse::<f64>().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        // Integers: numbers, or strings as protojson writes 64-bit ones.
        _ => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            Value::String(s) => {
                if let Ok(n) = s.parse::<i64>() {
                    Value::from(n)
                } else {
                    Value::from(s.parse::<u64>().map_err(|_| bad())?)
                }
            }
            _ => return Err(bad()),
        },
    })
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;
    use serde_json::json;

    use super::*;

    fn image() -> cri::Image {
        cri::Image {
            id: "sha256:abc".into(),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec![],
            size: 4_261_000,
            uid: Some(cri::Int64Value { value: 0 }),
            username: String::new(),
            spec: None,
            pinned: false,
        }
    }

    #[test]
    fn proto_names_of_rust_types() {
        assert_eq!(proto_name::<cri::Image>(), Some("runtime.v1.Image"));
        assert_eq!(proto_name::<cri::CdiDevice>(), Some("runtime.v1.CDIDevice"));
        assert_eq!(
            proto_name::<cri::ImageFsInfoResponse>(),
            Some("runtime.v1.ImageFsInfoResponse")
        );
        assert_eq!(proto_name::<String>(), None);
    }

    #[test]
    fn image_in_protojson_order_and_shape() {
        let out = serde_json::to_string(&ProtoJson::new(&image()).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"id":"sha256:abc","repoTags":["docker.io/library/busybox:latest"],"repoDigests":[],"size":"4261000","uid":{"value":"0"},"username":"","pinned":false}"#
        );
    }

    #[test]
    fn to_value_sorts_keys_and_keeps_strings() {
        let v = to_value(&image()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "pinned",
                "repoDigests",
                "repoTags",
                "size",
                "uid",
                "username"
            ]
        );
        assert_eq!(v["size"], json!("4261000"));
    }

    #[test]
    fn wrappers_nested_lists_and_maps() {
        let resp = cri::ImageFsInfoResponse {
            image_filesystems: vec![cri::FilesystemUsage {
                timestamp: 1_700_000_000_000_000_000,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: "/var/lib/crust".into(),
                }),
                used_bytes: Some(cri::UInt64Value { value: 42 }),
                inodes_used: None,
            }],
            container_filesystems: vec![],
        };
        assert_eq!(
            to_value(&resp).unwrap(),
            json!({
                "imageFilesystems": [{
                    "timestamp": "1700000000000000000",
                    "fsId": {"mountpoint": "/var/lib/crust"},
                    "usedBytes": {"value": "42"},
                }],
                "containerFilesystems": [],
            })
        );
        let spec = cri::ImageSpec {
            image: "busybox".into(),
            annotations: [
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let text = serde_json::to_string(&ProtoJson::new(&spec).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"image":"busybox","annotations":{"a":"1","b":"2"},"userSpecifiedImage":"","runtimeHandler":""}"#
        );
    }

    #[test]
    fn enums_by_name_and_bytes_as_base64() {
        let c = cri::ContainerStatus {
            state: cri::ContainerState::ContainerExited as i32,
            exit_code: 3,
            created_at: 5,
            ..Default::default()
        };
        let v = to_value(&c).unwrap();
        assert_eq!(v["state"], json!("CONTAINER_EXITED"));
        assert_eq!(v["exitCode"], json!(3));
        assert_eq!(v["createdAt"], json!("5"));
        assert!(v.get("metadata").is_none(), "unset messages are left out");
        assert_eq!(v["mounts"], json!([]));
        assert_eq!(v["labels"], json!({}));

        let resp = cri::ExecSyncResponse {
            stdout: b"hi\n".to_vec(),
            stderr: vec![],
            exit_code: 0,
        };
        let v = to_value(&resp).unwrap();
        assert_eq!(v, json!({"stdout": "aGkK", "stderr": "", "exitCode": 0}));
    }

    #[test]
    fn unset_messages_as_nulls() {
        let status = cri::PodSandboxStatus {
            id: "p1".into(),
            ..Default::default()
        };
        let v = to_value_with_nulls(&status).unwrap();
        assert_eq!(v["id"], json!("p1"));
        assert_eq!(v["network"], Value::Null);
        assert_eq!(v["metadata"], Value::Null);
        assert_eq!(v["labels"], json!({}));
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn generic_fallback_camelcases() {
        let v = ProtoJson {
            value: json!({"some_key": {"inner_key": 1, "gone": null}, "list_x": [{"a_b": 2}]}),
            type_name: None,
        }
        .to_value();
        assert_eq!(v, json!({"someKey": {"innerKey": 1}, "listX": [{"aB": 2}]}));
    }

    #[test]
    fn serde_keys_like_prost() {
        let field = |name: &str| FieldDescriptorProto {
            name: Some(name.into()),
            ..Default::default()
        };
        assert_eq!(serde_key(&field("CDI_devices")), "cdi_devices");
        assert_eq!(serde_key(&field("repo_tags")), "repo_tags");
        assert_eq!(serde_key(&field("fooBar")), "foo_bar");
        assert_eq!(serde_key(&field("HTTPServer")), "http_server");
    }

    #[test]
    fn lower_camel_matches_protoc() {
        assert_eq!(lower_camel("repo_digests"), "repoDigests");
        assert_eq!(lower_camel("id"), "id");
        assert_eq!(lower_camel("oom_score_adj"), "oomScoreAdj");
    }

    #[test]
    fn reads_crictl_style_config() {
        let cfg: cri::PodSandboxConfig = from_value(json!({
            "metadata": {"name": "nginx", "namespace": "default", "attempt": 1, "uid": "u1"},
            "log_directory": "/tmp",
            "linux": {"security_context": {"namespace_options": {"network": 2}}},
            "labels": {"app": "x"},
            "unknown_key": true,
        }))
        .unwrap();
        assert_eq!(cfg.metadata.as_ref().unwrap().name, "nginx");
        assert_eq!(cfg.log_directory, "/tmp");
        let ns = cfg
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(cfg.labels["app"], "x");
        assert!(cfg.dns_config.is_none());
    }

    #[test]
    fn reads_protojson_back() {
        let original = cri::ContainerStatus {
            id: "c1".into(),
            state: cri::ContainerState::ContainerRunning as i32,
            created_at: -7,
            metadata: Some(cri::ContainerMetadata {
                name: "n".into(),
                attempt: 2,
            }),
            ..Default::default()
        };
        let back: cri::ContainerStatus = from_value(to_value(&original).unwrap()).unwrap();
        assert_eq!(back, original);
        let err = from_value::<cri::ContainerStatus>(json!({"state": "NOPE"})).unwrap_err();
        assert!(format!("{err:#}").contains("NOPE"), "{err:#}");
    }

    /// proto/v1.proto must describe the same fields k8s-cri serializes.
    #[test]
    fn descriptor_matches_k8s_cri_types() {
        fn check<T: Serialize + Default>() {
            let name = proto_name::<T>().expect("type known");
            let desc = schema().message(name).unwrap();
            let value = serde_json::to_value(T::default()).unwrap();
            let mut serde_keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            serde_keys.sort();
            let mut proto_keys: Vec<String> = desc.field.iter().map(serde_key).collect();
            proto_keys.sort();
            assert_eq!(serde_keys, proto_keys, "{name}");
        }
        check::<cri::Image>();
        check::<cri::ImageSpec>();
        check::<cri::StatusResponse>();
        check::<cri::RuntimeStatus>();
        check::<cri::RuntimeHandler>();
        check::<cri::PodSandboxConfig>();
        check::<cri::ContainerConfig>();
        check::<cri::ContainerStatus>();
        check::<cri::PodSandboxStatus>();
        check::<cri::LinuxContainerResources>();
        check::<cri::ContainerStats>();
        check::<cri::FilesystemUsage>();
        check::<cri::VersionResponse>();
        check::<cri::UserNamespace>();
    }
}
