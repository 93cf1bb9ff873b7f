//! Datasets for prompt tuning: items (an input and its expected answer), read from a JSONL file
//! or generated, split into train / validation / test, and graded. Everything about a bad file
//! (a line that is not JSON, a missing field, an empty split, too few items) is an error naming
//! the file, the line and the field, found before any model is loaded.

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which part of the data an item belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Split::Train),
            "validation" | "val" | "valid" | "dev" => Some(Split::Validation),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// One question and its expected answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The line in the file (1-based), or the index of a generated item.
    pub id: usize,
    pub input: String,
    pub expected: String,
    /// The split the file asked for, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// Which file a dataset came from: its path and sha256, never its contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub path: PathBuf,
    pub sha256: String,
    pub items: usize,
}

/// How many items each split gets when the file does not say. `test: None` takes the rest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: Option<usize>,
}

/// The three splits.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Vec<Item>,
    pub validation: Vec<Item>,
    pub test: Vec<Item>,
}

/// A grader's test: whether `answer` is right for the item.
pub type GradeFn = dyn Fn(&Item, &str) -> bool + Send + Sync;

/// Decides whether an answer is right for an item.
#[derive(Clone, Default)]
pub enum Grader {
    /// The answer equals the expected one after [`normalize`].
    #[default]
    Exact,
    Custom(Arc<GradeFn>),
}

impl Grader {
    pub fn is_correct(&self, item: &Item, answer: &str) -> bool {
        match self {
            Grader::Exact => normalize(answer) == normalize(&item.expected),
            Grader::Custom(f) => f(item, answer),
        }
    }
}

impl std::fmt::Debug for Grader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grader::Exact => "Exact",
            Grader::Custom(_) => "Custom",
        })
    }
}

/// Lower case, inner whitespace collapsed, outer whitespace, quotes and a final period dropped:
/// `" Apple  pear."` and `"apple pear"` are the same answer.
pub fn normalize(answer: &str) -> String {
    let words: Vec<&str> = answer.split_whitespace().collect();
    let joined = words.join(" ").to_lowercase();
    let trimmed = joined.trim_matches(|c| c == '"' || c == '\'' || c == '`').trim_end_matches('.');
    trimmed.trim().to_string()
}

fn dataset_err(path: &Path, line: Option<usize>, reason: impl Into<String>) -> Error {
    Error::Dataset { path: path.to_path_buf(), line, reason: reason.into() }
}

/// Reads a JSONL file: one object per line with `input` (a string) and `answer` (a string,
/// number or bool), and optionally `split` (`train`, `validation` or `test`). Blank lines are
/// skipped.
pub fn load_jsonl(path: &Path) -> Result<(Vec<Item>, DataSource)> {
    let bytes =
        std::fs::read(path).map_err(|e| dataset_err(path, None, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| dataset_err(path, None, format!("not UTF-8 text: {e}")))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| dataset_err(path, Some(n), format!("not valid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| {
            dataset_err(
                path,
                Some(n),
                "expected a JSON object with the fields `input` and `answer`",
            )
        })?;
        let input = match obj.get("input") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(serde_json::Value::String(_)) => {
                return Err(dataset_err(path, Some(n), "field `input` is empty"))
            }
            Some(other) => {
                return Err(dataset_err(
                    path,
                    Some(n),
                    format!("field `input` must be a string, got {other}"),
                ))
            }
            None => return Err(dataset_err(path, Some(n), "missing field `input`")),
        };
        let expected = match obj.get("answer") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(serde_json::Value::String(_)) => {
                return Err(dataset_err(path, Some(n), "field `answer` is empty"))
            }
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(other) => {
                return Err(dataset_err(
                    path,
                    Some(n),
                    format!("field `answer` must be a string, a number or a bool, got {other}"),
                ))
            }
            None => return Err(dataset_err(path, Some(n), "missing field `answer`")),
        };
        let split = match obj.get("split") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(Split::parse(s).ok_or_else(|| {
                dataset_err(
                    path,
                    Some(n),
                    format!("field `split` is `{s}`; expected train, validation or test"),
                )
            })?),
            Some(other) => {
                return Err(dataset_err(
                    path,
                    Some(n),
                    format!("field `split` must be a string, got {other}"),
                ))
            }
        };
        items.push(Item { id: n, input, expected, split });
    }
    if items.is_empty() {
        return Err(dataset_err(path, None, "holds no items (expected one JSON object per line)"));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let source = DataSource {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        sha256,
        items: items.len(),
    };
    Ok((items, source))
}

/// Splits `items`: by their `split` field when the file gave one (then every line must), else
/// shuffled by `seed` into `sizes`. Every split must end up with at least one item. `path` names
/// the data in errors.
pub fn split(items: Vec<Item>, sizes: SplitSizes, seed: u64, path: &Path) -> Result<Splits> {
    let labelled = items.iter().filter(|i| i.split.is_some()).count();
    let splits = if labelled > 0 {
        if let Some(missing) = items.iter().find(|i| i.split.is_none()) {
            return Err(dataset_err(
                path,
                Some(missing.id),
                "missing field `split` (other lines have one: give it on every line or on none)",
            ));
        }
        let of =
            |s: Split| items.iter().filter(|i| i.split == Some(s)).cloned().collect::<Vec<_>>();
        Splits { train: of(Split::Train), validation: of(Split::Validation), test: of(Split::Test) }
    } else {
        let need = sizes.train + sizes.validation + sizes.test.unwrap_or(1);
        if items.len() < need {
            return Err(dataset_err(
                path,
                None,
                format!(
                    "too few items: {} for {} train + {} validation + {} test",
                    items.len(),
                    sizes.train,
                    sizes.validation,
                    sizes.test.map(|t| t.to_string()).unwrap_or_else(|| "at least 1".into())
                ),
            ));
        }
        let mut shuffled = items;
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let test_len = sizes.test.unwrap_or(shuffled.len() - sizes.train - sizes.validation);
        let mut rest = shuffled.into_iter();
        let train: Vec<Item> = rest.by_ref().take(sizes.train).collect();
        let validation: Vec<Item> = rest.by_ref().take(sizes.validation).collect();
        let test: Vec<Item> = rest.take(test_len).collect();
        Splits { train, validation, test }
    };
    for (name, list) in
        [("train", &splits.train), ("validation", &splits.validation), ("test", &splits.test)]
    {
        if list.is_empty() {
            return Err(dataset_err(path, None, format!("the {name} split is empty")));
        }
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn err(text: &str) -> String {
        let (_d, p) = file(text);
        load_jsonl(&p).unwrap_err().to_string()
    }

    #[test]
    fn reads_items_and_records_the_file_not_its_contents() {
        let (_d, p) = file("{\"input\": \"2+2\", \"answer\": 4}\n\n{\"input\": \"capital of France\", \"answer\": \"Paris\"}\n");
        let (items, source) = load_jsonl(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].id, items[0].expected.as_str()), (1, "4"));
        assert_eq!((items[1].id, items[1].input.as_str()), (3, "capital of France"));
        assert_eq!(source.items, 2);
        assert_eq!(source.sha256.len(), 64);
        assert!(!serde_json::to_string(&source).unwrap().contains("Paris"));
    }

    #[test]
    fn bad_lines_name_the_file_the_line_and_the_field() {
        let e = err("{\"input\": \"a\", \"answer\": \"b\"}\n{\"input\": \"a\"}\n");
        assert!(e.contains("data.jsonl line 2") && e.contains("missing field `answer`"), "{e}");
        let e = err("{\"input\": \"a\", \"answer\": \"b\"}\nnot json\n");
        assert!(e.contains("line 2") && e.contains("not valid JSON"), "{e}");
        let e = err("{\"input\": 3, \"answer\": \"b\"}\n");
        assert!(e.contains("line 1") && e.contains("`input` must be a string"), "{e}");
        let e = err("{\"input\": \"a\", \"answer\": \"b\", \"split\": \"holdout\"}\n");
        assert!(e.contains("`split` is `holdout`"), "{e}");
        assert!(err("\n\n").contains("holds no items"));
    }

    #[test]
    fn splits_need_enough_items_and_none_may_be_empty() {
        let items: Vec<Item> = (0..10)
            .map(|i| Item {
                id: i + 1,
                input: format!("q{i}"),
                expected: format!("a{i}"),
                split: None,
            })
            .collect();
        let p = Path::new("d.jsonl");
        let s =
            split(items.clone(), SplitSizes { train: 5, validation: 2, test: None }, 1, p).unwrap();
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (5, 2, 3));
        let mut ids: Vec<usize> =
            s.train.iter().chain(&s.validation).chain(&s.test).map(|i| i.id).collect();
        ids.sort();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "every item in exactly one split");
        let e = split(items.clone(), SplitSizes { train: 8, validation: 2, test: None }, 1, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("too few items: 10 for 8 train + 2 validation + at least 1 test"),
            "{e}"
        );
        // Labelled: the labels decide, and an empty split is named.
        let labelled: Vec<Item> = items
            .iter()
            .cloned()
            .map(|mut i| {
                i.split = Some(if i.id <= 8 { Split::Train } else { Split::Test });
                i
            })
            .collect();
        let e = split(labelled, SplitSizes { train: 5, validation: 2, test: None }, 1, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the validation split is empty"), "{e}");
        let mut partly = items;
        partly[0].split = Some(Split::Train);
        let e = split(partly, SplitSizes { train: 5, validation: 2, test: None }, 1, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("missing field `split`"), "{e}");
    }

    #[test]
    fn exact_grading_ignores_case_spacing_and_a_final_period() {
        let item = Item { id: 1, input: "q".into(), expected: "apple pear".into(), split: None };
        assert!(Grader::Exact.is_correct(&item, " Apple   pear. "));
        assert!(!Grader::Exact.is_correct(&item, "pear apple"));
    }
}
