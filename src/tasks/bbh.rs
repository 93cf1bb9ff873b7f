//! Algorithmic question sets of the BIG-Bench Hard kind, generated locally from a seed and graded
//! exactly: word sorting, object counting, boolean expressions, Dyck languages, multi-step
//! arithmetic and navigate. The questions follow BBH's formats (our own generators, not BBH's
//! data), so `opto run prompt` needs no download and the same seed gives the same items anywhere.

use crate::error::{Error, Result};
use crate::train::{Item, Splits};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// One generated question set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BbhTask {
    WordSorting,
    ObjectCounting,
    BooleanExpressions,
    Dyck,
    MultistepArithmetic,
    Navigate,
}

impl BbhTask {
    pub const ALL: [BbhTask; 6] = [
        BbhTask::WordSorting,
        BbhTask::ObjectCounting,
        BbhTask::BooleanExpressions,
        BbhTask::Dyck,
        BbhTask::MultistepArithmetic,
        BbhTask::Navigate,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            BbhTask::WordSorting => "word_sorting",
            BbhTask::ObjectCounting => "object_counting",
            BbhTask::BooleanExpressions => "boolean_expressions",
            BbhTask::Dyck => "dyck_languages",
            BbhTask::MultistepArithmetic => "multistep_arithmetic",
            BbhTask::Navigate => "navigate",
        }
    }

    pub fn from_name(name: &str) -> Result<BbhTask> {
        BbhTask::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
            let names: Vec<&str> = BbhTask::ALL.iter().map(|t| t.name()).collect();
            Error::Task {
                task: "prompt".into(),
                reason: format!("unknown question set `{name}`; available: {}", names.join(", ")),
            }
        })
    }

    /// `n` items from `seed`; the same (task, seed, n) always gives the same items, and a
    /// longer list starts with the shorter one.
    pub fn generate(&self, n: usize, seed: u64) -> Vec<Item> {
        let index = BbhTask::ALL.iter().position(|t| t == self).unwrap_or(0) as u64;
        let mut rng =
            StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (0xBB40 + index));
        (0..n)
            .map(|id| {
                let (input, expected) = match self {
                    BbhTask::WordSorting => word_sorting(&mut rng),
                    BbhTask::ObjectCounting => object_counting(&mut rng),
                    BbhTask::BooleanExpressions => boolean_expression(&mut rng),
                    BbhTask::Dyck => dyck(&mut rng),
                    BbhTask::MultistepArithmetic => arithmetic(&mut rng),
                    BbhTask::Navigate => navigate(&mut rng),
                };
                Item { id, input, expected, split: None }
            })
            .collect()
    }

    /// Train, validation and test items from `seed`, no question in two splits (generated
    /// questions can repeat by chance; repeats are skipped).
    pub fn splits(
        &self,
        train: usize,
        validation: usize,
        test: usize,
        seed: u64,
    ) -> Result<Splits> {
        let need = train + validation + test;
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<Item> = self
            .generate(need * 4, seed)
            .into_iter()
            .filter(|i| seen.insert(i.input.clone()))
            .take(need)
            .collect();
        if unique.len() < need {
            return Err(Error::Task {
                task: "prompt".into(),
                reason: format!(
                    "{} has only {} distinct questions for seed {seed}; {need} are needed",
                    self.name(),
                    unique.len()
                ),
            });
        }
        let mut rest = unique.into_iter();
        let train: Vec<Item> = rest.by_ref().take(train).collect();
        let validation: Vec<Item> = rest.by_ref().take(validation).collect();
        Ok(Splits { train, validation, test: rest.collect() })
    }
}

const WORDS: &[&str] = &[
    "apple", "river", "candle", "mountain", "zebra", "orbit", "velvet", "harbor", "pencil",
    "quartz", "meadow", "lantern", "falcon", "garden", "island", "jacket", "kettle", "lemon",
    "marble", "needle", "oyster", "pepper", "quiver", "rocket", "saddle", "tunnel", "umbrella",
    "violin", "walnut", "yogurt", "anchor", "bridge", "copper", "dragon", "ember", "forest",
    "glacier", "hammer", "iris", "jungle", "kitten", "ladder", "mirror", "nectar", "object",
    "puzzle", "ribbon", "silver", "timber", "valley", "window", "badge", "cobalt", "domino",
    "engine", "fabric",
];

fn word_sorting(rng: &mut StdRng) -> (String, String) {
    let n = rng.gen_range(4..=7);
    let words: Vec<&str> = WORDS.choose_multiple(rng, n).copied().collect();
    let mut sorted = words.clone();
    sorted.sort_unstable();
    (
        format!("Sort the following words alphabetically: List: {}", words.join(" ")),
        sorted.join(" "),
    )
}

const FRUITS: &[&str] =
    &["apple", "banana", "orange", "peach", "plum", "grape", "strawberry", "nectarine"];
const VEGETABLES: &[&str] =
    &["carrot", "onion", "potato", "cabbage", "lettuce head", "stalk of celery", "yam", "garlic"];
const ANIMALS: &[&str] = &["cat", "dog", "rabbit", "goat", "cow", "pig", "duck", "snake"];
const INSTRUMENTS: &[&str] =
    &["piano", "flute", "trumpet", "violin", "drum", "clarinet", "accordion", "trombone"];

fn count_word(n: usize) -> &'static str {
    ["", "a", "two", "three", "four"][n]
}

fn plural(word: &str, n: usize) -> String {
    if n == 1 {
        return word.to_string();
    }
    if let Some(rest) = word.strip_prefix("stalk of ") {
        return format!("stalks of {rest}");
    }
    if let Some(rest) = word.strip_suffix(" head") {
        return format!("{rest} heads");
    }
    if word.ends_with('h') || word.ends_with('o') {
        format!("{word}es")
    } else if let Some(stem) = word.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'o'])) {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    }
}

fn object_counting(rng: &mut StdRng) -> (String, String) {
    let groups: [(&str, &[&str]); 4] = [
        ("fruits", FRUITS),
        ("vegetables", VEGETABLES),
        ("animals", ANIMALS),
        ("musical instruments", INSTRUMENTS),
    ];
    let asked = rng.gen_range(0..groups.len());
    let mut things: Vec<(usize, String)> = Vec::new();
    let mut total = 0;
    for (g, (_, names)) in groups.iter().enumerate() {
        let k = if g == asked { rng.gen_range(2..=4) } else { rng.gen_range(0..=2) };
        for name in names.choose_multiple(rng, k) {
            let n = if rng.gen_bool(0.6) { 1 } else { rng.gen_range(2..=4) };
            if g == asked {
                total += n;
            }
            things.push((n, plural(name, n)));
        }
    }
    things.shuffle(rng);
    let listed: Vec<String> = things
        .iter()
        .map(|(n, w)| {
            if *n == 1 && (w.starts_with(['a', 'e', 'i', 'o', 'u'])) {
                format!("an {w}")
            } else {
                format!("{} {w}", count_word(*n))
            }
        })
        .collect();
    let (last, head) = listed.split_last().expect("at least two things");
    let question =
        format!("I have {}, and {last}. How many {} do I have?", head.join(", "), groups[asked].0);
    (question, total.to_string())
}

enum BoolExpr {
    Lit(bool),
    Not(Box<BoolExpr>),
    And(Box<BoolExpr>, Box<BoolExpr>),
    Or(Box<BoolExpr>, Box<BoolExpr>),
}

impl BoolExpr {
    fn eval(&self) -> bool {
        match self {
            BoolExpr::Lit(b) => *b,
            BoolExpr::Not(e) => !e.eval(),
            BoolExpr::And(a, b) => a.eval() && b.eval(),
            BoolExpr::Or(a, b) => a.eval() || b.eval(),
        }
    }

    /// BBH's spacing; binary parts are parenthesized so precedence never decides the answer.
    fn text(&self, top: bool) -> String {
        match self {
            BoolExpr::Lit(b) => (if *b { "True" } else { "False" }).to_string(),
            BoolExpr::Not(e) => format!("not {}", e.text(false)),
            BoolExpr::And(a, b) | BoolExpr::Or(a, b) => {
                let op = if matches!(self, BoolExpr::And(..)) { "and" } else { "or" };
                let inner = format!("{} {op} {}", a.text(false), b.text(false));
                if top {
                    inner
                } else {
                    format!("( {inner} )")
                }
            }
        }
    }
}

fn random_bool(rng: &mut StdRng, depth: usize) -> BoolExpr {
    if depth == 0 || rng.gen_bool(0.3) {
        let lit = BoolExpr::Lit(rng.gen_bool(0.5));
        return if rng.gen_bool(0.3) { BoolExpr::Not(Box::new(lit)) } else { lit };
    }
    match rng.gen_range(0..5) {
        0 => BoolExpr::Not(Box::new(random_bool(rng, depth - 1))),
        1 | 2 => BoolExpr::And(
            Box::new(random_bool(rng, depth - 1)),
            Box::new(random_bool(rng, depth - 1)),
        ),
        _ => BoolExpr::Or(
            Box::new(random_bool(rng, depth - 1)),
            Box::new(random_bool(rng, depth - 1)),
        ),
    }
}

fn boolean_expression(rng: &mut StdRng) -> (String, String) {
    let e = loop {
        let e = random_bool(rng, 2);
        // At least one operator, so the question is not a bare literal.
        if !matches!(e, BoolExpr::Lit(_)) {
            break e;
        }
    };
    (
        format!("Evaluate the boolean expression: {} is", e.text(true)),
        (if e.eval() { "True" } else { "False" }).to_string(),
    )
}

fn dyck(rng: &mut StdRng) -> (String, String) {
    const PAIRS: [(char, char); 4] = [('(', ')'), ('[', ']'), ('{', '}'), ('<', '>')];
    let mut stack: Vec<usize> = Vec::new();
    let mut seq: Vec<char> = Vec::new();
    let len = rng.gen_range(4..=9);
    while seq.len() < len || stack.is_empty() {
        if !stack.is_empty() && rng.gen_bool(0.4) {
            let p = stack.pop().expect("not empty");
            seq.push(PAIRS[p].1);
        } else {
            let p = rng.gen_range(0..PAIRS.len());
            stack.push(p);
            seq.push(PAIRS[p].0);
        }
    }
    let rest: Vec<String> = stack.iter().rev().map(|&p| PAIRS[p].1.to_string()).collect();
    let shown: Vec<String> = seq.iter().map(char::to_string).collect();
    (
        format!("Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: {}", shown.join(" ")),
        rest.join(" "),
    )
}

fn arithmetic(rng: &mut StdRng) -> (String, String) {
    let mut num = || rng.gen_range(-9i64..=9);
    let (a, b, c, d) = (num(), num(), num(), num());
    let ops = ['+', '-', '*'];
    let (o1, o2, o3) =
        (ops[rng.gen_range(0..3)], ops[rng.gen_range(0..3)], ops[rng.gen_range(0..3)]);
    let apply = |x: i64, o: char, y: i64| match o {
        '+' => x + y,
        '-' => x - y,
        _ => x * y,
    };
    let value = apply(apply(a, o1, b), o2, apply(c, o3, d));
    (format!("(({a} {o1} {b}) {o2} ({c} {o3} {d})) ="), value.to_string())
}

/// Where moves (direction index into forward, backward, left, right; steps) end.
fn position(moves: &[(usize, i64)]) -> (i64, i64) {
    moves.iter().fold((0, 0), |(x, y), &(d, n)| match d {
        0 => (x, y + n),
        1 => (x, y - n),
        2 => (x - n, y),
        _ => (x + n, y),
    })
}

fn navigate(rng: &mut StdRng) -> (String, String) {
    // Moves on a grid, always facing forward; half the questions return to the start.
    let dirs = ["forward", "backward", "left", "right"];
    let returns = rng.gen_bool(0.5);
    let mut moves: Vec<(usize, i64)> =
        (0..rng.gen_range(2..=4)).map(|_| (rng.gen_range(0..4), rng.gen_range(1..=9))).collect();
    if returns {
        let (x, y) = position(&moves);
        if y != 0 {
            moves.push((if y > 0 { 1 } else { 0 }, y.abs()));
        }
        if x != 0 {
            moves.push((if x > 0 { 2 } else { 3 }, x.abs()));
        }
        moves.shuffle(rng);
    } else if position(&moves) == (0, 0) {
        moves.push((0, 1));
    }
    let back = position(&moves) == (0, 0);
    let steps: Vec<String> = moves
        .iter()
        .map(|&(d, n)| format!("Take {n} step{} {}.", if n == 1 { "" } else { "s" }, dirs[d]))
        .collect();
    (
        format!("If you follow these instructions, do you return to the starting point? Always face forward. {} Options: Yes or No.", steps.join(" ")),
        (if back { "Yes" } else { "No" }).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_reproducible_and_prefix_stable() {
        for task in BbhTask::ALL {
            let a = task.generate(20, 7);
            assert_eq!(a, task.generate(20, 7), "{}", task.name());
            assert_eq!(&a[..5], &task.generate(5, 7)[..], "{}", task.name());
            assert_ne!(a, task.generate(20, 8), "{}", task.name());
            let s = task.splits(15, 5, 100, 0).unwrap();
            assert_eq!(
                (s.train.len(), s.validation.len(), s.test.len()),
                (15, 5, 100),
                "{}",
                task.name()
            );
            let train: std::collections::HashSet<&str> =
                s.train.iter().chain(&s.validation).map(|i| i.input.as_str()).collect();
            assert!(
                s.test.iter().all(|i| !train.contains(i.input.as_str())),
                "{}: a test question was seen in training",
                task.name()
            );
            let distinct: std::collections::HashSet<&str> =
                a.iter().map(|i| i.input.as_str()).collect();
            assert!(distinct.len() >= 15, "{}: {} distinct of 20", task.name(), distinct.len());
        }
    }

    #[test]
    fn answers_are_the_exact_solutions() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let (q, a) = word_sorting(&mut rng);
            let words: Vec<&str> = q.split("List: ").nth(1).unwrap().split(' ').collect();
            let mut sorted = words.clone();
            sorted.sort();
            assert_eq!(a, sorted.join(" "));
            let (q, a) = arithmetic(&mut rng);
            // Re-evaluate the printed expression independently.
            let parts: Vec<&str> = q.trim_end_matches(" =").split(' ').collect();
            let n = |s: &str| s.trim_matches(|c| c == '(' || c == ')').parse::<i64>().unwrap();
            let op = |x: i64, o: &str, y: i64| match o {
                "+" => x + y,
                "-" => x - y,
                _ => x * y,
            };
            assert_eq!(
                a.parse::<i64>().unwrap(),
                op(
                    op(n(parts[0]), parts[1], n(parts[2])),
                    parts[3],
                    op(n(parts[4]), parts[5], n(parts[6]))
                ),
                "{q}"
            );
            let (q, a) = dyck(&mut rng);
            // The input followed by the answer is balanced.
            let all = format!("{} {a}", q.split("Input: ").nth(1).unwrap());
            let mut stack = Vec::new();
            for t in all.split(' ') {
                match t {
                    "(" | "[" | "{" | "<" => stack.push(t),
                    _ => {
                        let open = stack.pop().expect("balanced");
                        assert_eq!(format!("{open}{t}").as_str().len(), 2);
                        assert!(
                            ["()", "[]", "{}", "<>"].contains(&format!("{open}{t}").as_str()),
                            "{q} -> {a}"
                        );
                    }
                }
            }
            assert!(stack.is_empty(), "{q} -> {a}");
        }
        let (q, a) = (
            BoolExpr::And(
                Box::new(BoolExpr::Not(Box::new(BoolExpr::Lit(false)))),
                Box::new(BoolExpr::Lit(true)),
            ),
            "True",
        );
        assert_eq!((q.text(true), q.eval()), ("not False and True".to_string(), a == "True"));
    }

    #[test]
    fn counting_and_navigation_answers_match_their_text() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut yes = 0;
        for _ in 0..60 {
            let (q, a) = navigate(&mut rng);
            let (mut x, mut y) = (0i64, 0i64);
            for part in q.split("Take ").skip(1) {
                let mut w = part.split(' ');
                let n: i64 = w.next().unwrap().parse().unwrap();
                match w.nth(1).unwrap().trim_end_matches(['.', ' ']).split('.').next().unwrap() {
                    "forward" => y += n,
                    "backward" => y -= n,
                    "left" => x -= n,
                    _ => x += n,
                }
            }
            assert_eq!(a == "Yes", (x, y) == (0, 0), "{q}");
            yes += (a == "Yes") as usize;
            let (q, a) = object_counting(&mut rng);
            assert!(q.starts_with("I have ") && q.contains("How many"), "{q}");
            assert!((2..=16).contains(&a.parse::<usize>().unwrap()), "{q} -> {a}");
        }
        assert!((15..=45).contains(&yes), "{yes} of 60 return");
        assert_eq!(plural("peach", 2), "peaches");
        assert_eq!(plural("strawberry", 3), "strawberries");
        assert_eq!(plural("stalk of celery", 2), "stalks of celery");
    }
}
