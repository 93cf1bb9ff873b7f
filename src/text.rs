//! Shortening and wrapping text at word boundaries, for the places a person reads a label or a
//! cell (graph pictures, DOT labels, the final table): a word cut in half reads as a typo.
//! Wrapping is `textwrap`'s; cutting keeps whole words where the text has spaces.

/// Cuts `text` to at most `limit` characters, at a word boundary when one falls in the last
/// third, marking the cut with `…`.
pub fn cut_words(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let keep = limit.saturating_sub(1).max(1);
    let head: String = text.chars().take(keep).collect();
    let at_space = head.rfind(' ').filter(|&i| head[..i].chars().count() * 3 >= keep * 2);
    let head = match at_space {
        Some(i) => head[..i].trim_end(),
        None => head.as_str(),
    };
    // A text that already ends in an ellipsis keeps just the one.
    format!("{}…", head.trim_end_matches(['…', ' ']))
}

/// `text` wrapped to lines of at most `width` characters (words longer than that are split),
/// keeping its own line breaks; past `max_lines` the last kept line ends with `…`.
pub fn wrap_words(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let width = width.max(4);
    let mut lines: Vec<String> = text
        .lines()
        .flat_map(|l| {
            textwrap::wrap(l, width).into_iter().map(|c| c.into_owned()).collect::<Vec<_>>()
        })
        .collect();
    if lines.len() > max_lines.max(1) {
        lines.truncate(max_lines.max(1));
        if let Some(last) = lines.last_mut() {
            *last = cut_words(&format!("{last} …"), width);
            if !last.ends_with('…') {
                last.push('…');
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_between_words() {
        assert_eq!(cut_words("the quick brown fox jumps", 16), "the quick brown…");
        assert_eq!(cut_words("short", 16), "short");
        assert!(cut_words("abcdefghijklmnopqrstuvwxyz", 10).chars().count() <= 10);
    }

    #[test]
    fn wrapping_keeps_words_and_marks_what_was_left_out() {
        assert_eq!(
            wrap_words("Fires at the square of the hidden board", 16, 5),
            vec!["Fires at the", "square of the", "hidden board"]
        );
        let cut = wrap_words("Fires at the square of the hidden board", 16, 2);
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with('…') && cut[1].chars().count() <= 16, "{cut:?}");
        assert_eq!(wrap_words("a\nb", 10, 5), vec!["a", "b"]);
    }
}
