//! A model manifest: what a model is, where its bytes come from and how to check them.
//!
//! Manifests are TOML files (`models/*.toml`). The built-in ones are compiled into the binary
//! with `include_str!`, so `opto` works without the repository at hand; a manifest file given
//! by path works the same way. Parsing is strict (unknown fields are errors) and every field is
//! checked, so a typo in a manifest is reported with the file and the field, never ignored.

use crate::error::{Error, Result};
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The id pulled when none is named.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b-instruct";

/// The manifests shipped inside the binary: (source file name, TOML text).
const BUILTIN_SOURCES: &[(&str, &str)] = &[
    (
        "models/qwen2.5-coder-1.5b-instruct.toml",
        include_str!("../../../../models/qwen2.5-coder-1.5b-instruct.toml"),
    ),
    (
        "models/qwen2.5-coder-0.5b-instruct.toml",
        include_str!("../../../../models/qwen2.5-coder-0.5b-instruct.toml"),
    ),
    (
        "models/smollm2-135m-instruct.toml",
        include_str!("../../../../models/smollm2-135m-instruct.toml"),
    ),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short stable name, also the cache folder's name (`[a-z0-9._-]`).
    pub id: String,
    /// Other names that resolve to this model (`qwen2.5-coder-1.5b`).
    #[serde(default)]
    pub aliases: Vec<String>,
    pub description: String,
    /// `general.architecture` of the GGUF (qwen2, llama, ...).
    pub architecture: String,
    pub license: String,
    /// How prompts must be formatted, and tokenizer quirks the engine has to know.
    pub chat_format: String,
    /// The quantization of the file as published (informative, e.g. "Q4_K_M").
    pub quantization: String,
    /// sha256 (lowercase hex) of the assembled file, identical for every source.
    pub sha256: String,
    /// Size in bytes of the assembled file.
    pub bytes: u64,
    pub huggingface: HuggingFace,
    pub mirror: Mirror,
    /// Present when the published file must be re-quantized to run fast in candle.
    #[serde(default)]
    pub requantize: Option<Requantize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuggingFace {
    /// `owner/name` of the model repository.
    pub repo: String,
    /// File name inside the repository; also the name of the cached file.
    pub file: String,
    /// Commit hash, so a re-upload under the same name cannot change what is pulled.
    pub revision: String,
}

/// The package-registry mirror: the file split into parts, each shipped inside one wheel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Which registry the packages live on, for people; the ordinary client (pip) decides how
    /// to reach it.
    pub registry: String,
    /// Concatenated in this order to give the file.
    pub parts: Vec<MirrorPart>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPart {
    pub package: String,
    pub version: String,
    /// Path of the part inside the wheel (a zip).
    pub path: String,
    /// sha256 of the wheel itself, where known; checked before the wheel is opened.
    #[serde(default)]
    pub wheel_sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requantize {
    /// Tensors of these types are re-quantized (the types candle runs on a scalar path).
    #[serde(default = "slow_types")]
    pub from: Vec<QuantType>,
    pub to: QuantType,
}

fn slow_types() -> Vec<QuantType> {
    vec![QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1]
}

/// A GGML tensor type, spelled as in GGUF tools (hence the underscores).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuantType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

impl QuantType {
    pub fn ggml(self) -> GgmlDType {
        match self {
            QuantType::F32 => GgmlDType::F32,
            QuantType::F16 => GgmlDType::F16,
            QuantType::BF16 => GgmlDType::BF16,
            QuantType::Q4_0 => GgmlDType::Q4_0,
            QuantType::Q4_1 => GgmlDType::Q4_1,
            QuantType::Q5_0 => GgmlDType::Q5_0,
            QuantType::Q5_1 => GgmlDType::Q5_1,
            QuantType::Q8_0 => GgmlDType::Q8_0,
            QuantType::Q8_1 => GgmlDType::Q8_1,
            QuantType::Q2_K => GgmlDType::Q2K,
            QuantType::Q3_K => GgmlDType::Q3K,
            QuantType::Q4_K => GgmlDType::Q4K,
            QuantType::Q5_K => GgmlDType::Q5K,
            QuantType::Q6_K => GgmlDType::Q6K,
            QuantType::Q8_K => GgmlDType::Q8K,
        }
    }

    /// Lowercase name used in derived file names (`q8_0`).
    pub fn file_tag(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// A TOML error as one line that leads with what is wrong (`missing field `bytes``), then where
/// (for a missing field the place means nothing and is left out). toml's own text starts with "TOML parse error at line 1,
/// column 1" for a missing field (its span is the whole document) and puts the reason lines
/// below, where a one-line CLI error cut it off.
fn toml_error_line(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().replace('\n', " ");
    match e.span() {
        // A missing field's span covers its whole table, which says nothing.
        _ if what.starts_with("missing field") => what,
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let source: String =
                text.lines().nth(line - 1).unwrap_or("").trim().chars().take(80).collect();
            format!("{what} (line {line}, column {column}: `{source}`)")
        }
        _ => what,
    }
}

impl Manifest {
    /// Parses and checks a manifest. `source` names where the text came from (a file path or
    /// the built-in file name) and appears in every error.
    pub fn parse(text: &str, source: &str) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| Error::Model {
            model: source.to_string(),
            reason: format!("manifest {source}: {}", toml_error_line(text, &e)),
        })?;
        manifest.check(source)?;
        Ok(manifest)
    }

    /// Reads a manifest from a file.
    pub fn from_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// File name of the file as published and cached.
    pub fn file_name(&self) -> &str {
        &self.huggingface.file
    }

    /// File name of the re-quantized file, where the manifest asks for one.
    pub fn derived_file_name(&self) -> Option<String> {
        self.requantize.as_ref().map(|r| format!("{}.{}.gguf", self.id, r.to.file_tag()))
    }

    /// True when `name` is this model's id or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.id == name || self.aliases.iter().any(|a| a == name)
    }

    /// Field-level checks that serde cannot express. Each error names the field.
    fn check(&self, source: &str) -> Result<()> {
        let bad = |field: &str, reason: String| Error::Model {
            model: if self.id.is_empty() { source.to_string() } else { self.id.clone() },
            reason: format!("manifest {source}: field `{field}`: {reason}"),
        };
        if !is_safe_name(&self.id) {
            return Err(bad(
                "id",
                format!("{:?} must be non-empty and use only a-z, 0-9, '.', '_' and '-'", self.id),
            ));
        }
        for alias in &self.aliases {
            if alias.trim().is_empty() {
                return Err(bad("aliases", "an alias is empty".into()));
            }
        }
        for (field, value) in [
            ("description", &self.description),
            ("architecture", &self.architecture),
            ("license", &self.license),
            ("chat_format", &self.chat_format),
            ("quantization", &self.quantization),
            ("mirror.registry", &self.mirror.registry),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field, "is empty".into()));
            }
        }
        if !is_sha256_hex(&self.sha256) {
            return Err(bad("sha256", format!("{:?} is not 64 lowercase hex digits", self.sha256)));
        }
        if self.bytes == 0 {
            return Err(bad("bytes", "must be the file size, not 0".into()));
        }
        let hf = &self.huggingface;
        if hf.repo.split('/').filter(|s| !s.is_empty()).count() != 2 {
            return Err(bad("huggingface.repo", format!("{:?} is not `owner/name`", hf.repo)));
        }
        if !hf.file.ends_with(".gguf")
            || hf.file.contains('/')
            || hf.file.contains('\\')
            || hf.file.starts_with('.')
        {
            return Err(bad(
                "huggingface.file",
                format!("{:?} must be a plain `*.gguf` file name", hf.file),
            ));
        }
        if hf.revision.trim().is_empty() {
            return Err(bad("huggingface.revision", "is empty".into()));
        }
        if self.mirror.parts.is_empty() {
            return Err(bad("mirror.parts", "lists no part".into()));
        }
        for (i, part) in self.mirror.parts.iter().enumerate() {
            let field = |name: &str| format!("mirror.parts[{i}].{name}");
            if part.package.trim().is_empty() || part.package.contains(char::is_whitespace) {
                return Err(bad(
                    &field("package"),
                    format!("{:?} is not a package name", part.package),
                ));
            }
            if part.version.trim().is_empty() || part.version.contains(char::is_whitespace) {
                return Err(bad(&field("version"), format!("{:?} is not a version", part.version)));
            }
            if part.path.trim().is_empty() {
                return Err(bad(&field("path"), "is empty".into()));
            }
            if let Some(sha) = &part.wheel_sha256 {
                if !is_sha256_hex(sha) {
                    return Err(bad(
                        &field("wheel_sha256"),
                        format!("{sha:?} is not 64 lowercase hex digits"),
                    ));
                }
            }
        }
        if let Some(requant) = &self.requantize {
            if requant.from.is_empty() {
                return Err(bad("requantize.from", "lists no type".into()));
            }
            if requant.from.contains(&requant.to) {
                return Err(bad("requantize.to", format!("{:?} is also in `from`", requant.to)));
            }
            if matches!(requant.to, QuantType::Q8_1) {
                // candle can quantize to Q8_1 but has no matmul kernel for it.
                return Err(bad(
                    "requantize.to",
                    "Q8_1 cannot be used for weights in candle".into(),
                ));
            }
        }
        Ok(())
    }
}

fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// All built-in manifests, parsed. A broken built-in manifest is a bug caught by the tests;
/// at run time it is reported as an error rather than a panic.
pub fn builtin_manifests() -> Result<Vec<Manifest>> {
    BUILTIN_SOURCES.iter().map(|(source, text)| Manifest::parse(text, source)).collect()
}

/// The built-in manifest whose id or alias is `name`.
pub fn builtin_manifest(name: &str) -> Result<Manifest> {
    let all = builtin_manifests()?;
    let known: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
    all.into_iter().find(|m| m.answers_to(name)).ok_or_else(|| Error::Model {
        model: name.to_string(),
        reason: format!(
            "unknown model; known: {} (or a .gguf path, or a model another tool keeps: {})",
            known.join(", "),
            super::user_stores::STORE_PREFIXES
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "tiny"
description = "a test model"
architecture = "qwen2"
license = "Apache-2.0"
chat_format = "ChatML"
quantization = "Q8_0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 10
[huggingface]
repo = "someone/tiny-GGUF"
file = "tiny.gguf"
revision = "main"
[mirror]
registry = "PyPI"
[[mirror.parts]]
package = "tiny-part1"
version = "1.0"
path = "tiny/part1.bin"
"#;

    #[test]
    fn a_minimal_manifest_parses() {
        let m = Manifest::parse(GOOD, "good.toml").unwrap();
        assert_eq!(m.id, "tiny");
        assert_eq!(m.mirror.parts.len(), 1);
        assert!(m.requantize.is_none());
        assert_eq!(m.derived_file_name(), None);
    }

    #[test]
    fn requantize_defaults_to_the_slow_types() {
        let text = format!("{GOOD}\n[requantize]\nto = \"Q8_0\"\n");
        let m = Manifest::parse(&text, "r.toml").unwrap();
        let r = m.requantize.as_ref().unwrap();
        assert_eq!(r.from, vec![QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1]);
        assert_eq!(m.derived_file_name().as_deref(), Some("tiny.q8_0.gguf"));
    }

    fn error_of(text: &str) -> String {
        match Manifest::parse(text, "broken.toml") {
            Ok(_) => panic!("a broken manifest was accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = error_of(&GOOD.replace("bytes = 10\n", ""));
        assert!(err.contains("broken.toml") && err.contains("missing field `bytes`"), "{err}");
        assert!(
            !err.contains('\n') && !err.contains("line 1, column 1"),
            "one line, naming the field first: {err}"
        );
        let err = error_of(&GOOD.replace("bytes = 10", "bytes = \"ten\""));
        assert!(
            !err.contains('\n') && err.contains("line ") && err.contains("bytes"),
            "a bad value says where: {err}"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = error_of(&GOOD.replace("bytes = 10", "bytes = 10\nsha265 = \"x\""));
        assert!(err.contains("broken.toml") && err.contains("sha265"), "{err}");
    }

    #[test]
    fn a_bad_sha256_is_named() {
        let err = error_of(
            &GOOD
                .replace("0000000000000000000000000000000000000000000000000000000000000000", "abc"),
        );
        assert!(err.contains("broken.toml") && err.contains("`sha256`"), "{err}");
    }

    #[test]
    fn a_bad_part_is_named_with_its_index() {
        let err = error_of(&GOOD.replace("version = \"1.0\"", "version = \"\""));
        assert!(err.contains("mirror.parts[0].version"), "{err}");
    }

    #[test]
    fn an_unknown_quant_type_is_named() {
        let err = error_of(&format!("{GOOD}\n[requantize]\nto = \"Q9_9\"\n"));
        assert!(err.contains("Q9_9") && err.contains("to"), "{err}");
    }

    #[test]
    fn an_unsafe_id_or_file_is_refused() {
        assert!(error_of(&GOOD.replace("id = \"tiny\"", "id = \"../x\"")).contains("`id`"));
        assert!(error_of(&GOOD.replace("file = \"tiny.gguf\"", "file = \"../tiny.gguf\""))
            .contains("huggingface.file"));
        assert!(error_of(&GOOD.replace("file = \"tiny.gguf\"", "file = \"tiny.bin\""))
            .contains("huggingface.file"));
    }

    #[test]
    fn an_unknown_builtin_lists_the_known_ones() {
        let err = builtin_manifest("no-such-model").unwrap_err().to_string();
        assert!(err.contains("no-such-model") && err.contains(DEFAULT_MODEL), "{err}");
    }
}
