//! Text to terms: lowercase words of two or more letters or digits (as
//! scikit-learn's default `token_pattern`, `\b\w\w+\b`, finds them), and the
//! word n-grams over them. Fitting and predicting share this one function,
//! so a text always yields the same terms.

/// The words of a lowercased text: runs of letters, digits and `_`, at
/// least two characters long. Apostrophes split words ("don't" -> "don").
pub(super) fn words(lowercased: &str) -> Vec<&str> {
    lowercased
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().nth(1).is_some())
        .collect()
}

/// Calls `term` with every n-gram of `words`, n from 1 to `ngram_max`, words
/// joined by one space (scikit-learn's form). `buf` is reused across calls
/// so a prediction allocates no string per n-gram.
pub(super) fn for_each_term(words: &[&str], ngram_max: usize, buf: &mut String, mut term: impl FnMut(&str)) {
    for n in 1..=ngram_max {
        for window in words.windows(n) {
            if let [word] = window {
                term(word);
                continue;
            }
            buf.clear();
            for (i, word) in window.iter().enumerate() {
                if i > 0 {
                    buf.push(' ');
                }
                buf.push_str(word);
            }
            term(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str, ngram_max: usize) -> Vec<String> {
        let lower = text.to_lowercase();
        let mut out = Vec::new();
        for_each_term(&words(&lower), ngram_max, &mut String::new(), |t| {
            out.push(t.to_owned())
        });
        out
    }

    #[test]
    fn words_are_lowercase_runs_of_two_or_more_word_characters() {
        assert_eq!(
            terms("Don't PANIC: a 42-page guide_book, naïve ÉTÉ!", 1),
            ["don", "panic", "42", "page", "guide_book", "naïve", "été"]
        );
    }

    #[test]
    fn ngrams_come_after_the_unigrams_joined_by_one_space() {
        assert_eq!(
            terms("a good, GOOD  film", 2),
            ["good", "good", "film", "good good", "good film"]
        );
        assert_eq!(terms("one", 3), ["one"]);
    }
}
